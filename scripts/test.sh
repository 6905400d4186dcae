#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs npm packages, starts its own services on
# test ports (apart from a running fleet), builds the local images, lints, then runs every test.
# Services it started are stopped on exit; Docker images stay cached.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  cat <<'TXT'
Usage: npm test [-- mocha file globs...]
Runs lint, then the contract, unit, integration and smoke tests against real services started on
test ports (chain 18545, Kubo 15401, MQTT 11883) under .shoal/test. SHOAL_KEEP_SERVICES=1 leaves
them running afterwards.
TXT
  exit 0
fi

export SHOAL_HOME=$repo/.shoal/test
export SHOAL_CHAIN_PORT=${SHOAL_TEST_CHAIN_PORT:-18545}
export SHOAL_KUBO_API_PORT=${SHOAL_TEST_KUBO_API_PORT:-15401}
export SHOAL_MQTT_PORT=${SHOAL_TEST_MQTT_PORT:-11883}

ensure_npm_packages

fleet=(node_modules/.bin/ts-node --transpile-only scripts/fleet/cli.ts)
stop_services() {
  [[ ${SHOAL_KEEP_SERVICES:-} == 1 ]] && return 0
  bash scripts/services.sh down
  # After the services that listened on it: the device network and any device host a test left.
  "${fleet[@]}" hosts-down
}
trap stop_services EXIT

# The end-to-end fleets run on isolated device hosts (scripts/fleet/hosts.ts) when this machine
# allows them: a device network of the test run's own, whose gateway the services listen on too.
"${fleet[@]}" hosts-down # leftovers of an interrupted run
if why=$(node_modules/.bin/ts-node --transpile-only -e 'process.stdout.write(require("./scripts/fleet/hosts").isolationUnavailable() ?? "")') && [[ -z $why ]]; then
  SHOAL_BIND_ADDRESS=$("${fleet[@]}" net-up)
  export SHOAL_BIND_ADDRESS
else
  echo "The end-to-end tests cannot run on isolated devices here: $why." >&2
fi

say "compiling contracts and the worker"
npx hardhat compile --quiet
npm run -s build:worker

say "starting services"
bash scripts/services.sh up
source "$SHOAL_HOME/env"
bash scripts/services.sh status

say "building local images"
bash scripts/images/build.sh

# The console's browser tests drive Debian's Chromium (browser downloads do not work here).
if ! command -v chromium >/dev/null; then
  say "installing chromium (console tests)"
  [[ $(id -u) -eq 0 ]] || { echo "chromium is missing; run as root or apt-get install chromium" >&2; exit 1; }
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

say "lint"
bash scripts/lint.sh

say "tests"
shopt -s globstar nullglob
files=("$@")
((${#files[@]})) || files=(test/**/*.test.ts)
# Any failure exits 1: the reporter clamps Hardhat's status (the failure count, which would wrap
# at 256), and a crash before the summary is a failure too.
status=0
npx hardhat test --no-compile "${files[@]}" || status=$?
if ((status != 0)); then
  say "tests failed (exit status $status); the summary line above counts them"
  exit 1
fi
say "done"
