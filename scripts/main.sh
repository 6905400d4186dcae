#!/usr/bin/env bash
# The main job: a local edge fleet on one machine. Installs what is missing, starts Docker, Kubo,
# Mosquitto and a Hardhat node on 127.0.0.1, builds the demo images, deploys the contracts (with a
# short heartbeat TTL, so that a dead device is noticed within seconds), then `fleet up`: N device
# workers of different sizes, the demo apps published and deployed, and the live fleet view. Each
# device is a host of its own (network namespace, address on the project's bridge, Docker Engine,
# Kubo node, worker) when this machine allows it (root, ip, nsenter, dockerd); otherwise, or with
# --shared, every device shares this machine's engine and Kubo node.
# On a terminal it stays in the view until Ctrl-C, which stops the fleet (not the services);
# otherwise it prints the status and leaves everything running. `npm run down` (= this script's
# `down`) stops the fleet and then the services, by recorded PIDs only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"

case ${1:-} in
  -h | --help)
    cat <<'TXT'
Usage: npm start [-- fleet options]   the services, the contracts and a fleet of device workers
       npm run down                    stop the fleet, then the services (recorded PIDs only)
       npm run fleet -- --help         the fleet's commands: view, status, scenario, down

Fleet options: --devices N (1..8, default 3), --no-demo, --apps a,b, --keep (Ctrl-C leaves the
fleet running), --detach (never stay in the view), --shared (all devices on this machine's engine
and Kubo node instead of a host each). Without a terminal npm start detaches anyway.
SHOAL_DEVICE_SUBNET (an IPv4 /24) fixes the device network's subnet; default the first free /24 of
10.213.0.0/16 (docs/architecture.md, "Device hosts").
SHOAL_HEARTBEAT_TTL (seconds, default 30 here) is the contracts' heartbeat TTL; SHOAL_TIMELOCK_DELAY
(seconds, default 60 here) delays every admin change.

Ports: chain 8545, Kubo API 5401, MQTT 1883, MQTT over WebSockets 1884, console 4173
(SHOAL_CHAIN_PORT, SHOAL_KUBO_API_PORT, SHOAL_MQTT_PORT, SHOAL_MQTT_WS_PORT, SHOAL_CONSOLE_PORT
override them). State lives in .shoal/; the Kubo binary is cached in ~/.cache/shoal.
TXT
    exit 0
    ;;
  down)
    if [[ -x node_modules/.bin/ts-node ]]; then
      node_modules/.bin/ts-node --transpile-only scripts/fleet/cli.ts down || true
      node_modules/.bin/ts-node --transpile-only console/serve.ts stop || true
    fi
    bash scripts/services.sh down
    # The device network goes after the services that listened on it.
    if [[ -x node_modules/.bin/ts-node ]]; then
      node_modules/.bin/ts-node --transpile-only scripts/fleet/cli.ts hosts-down
    fi
    exit 0
    ;;
esac

ensure_npm_packages
fleet=(node_modules/.bin/ts-node --transpile-only scripts/fleet/cli.ts)
# Refuse bad fleet options now, not after minutes of setup.
"${fleet[@]}" up --check "$@"

say "compiling contracts and the worker"
npx hardhat compile --quiet
npm run -s build:worker

say "stopping a previous fleet, if any"
"${fleet[@]}" down
# Leftovers of a crashed run (namespaces, engines, Kubo nodes, links, bridge, iptables rules).
"${fleet[@]}" hosts-down

shared=false
for arg in "$@"; do [[ $arg != --shared ]] || shared=true; done
if ! $shared; then
  if why=$(node_modules/.bin/ts-node --transpile-only -e 'process.stdout.write(require("./scripts/fleet/hosts").isolationUnavailable() ?? "")') && [[ -z $why ]]; then
    say "device network (one host per device)"
    SHOAL_BIND_ADDRESS=$("${fleet[@]}" net-up)
    export SHOAL_BIND_ADDRESS
    echo "Devices get addresses on $SHOAL_BIND_ADDRESS/24; the services listen there too." >&2
  else
    echo "Running the devices in shared mode (one Docker Engine and Kubo node for all): $why." >&2
    set -- "$@" --shared
  fi
fi

say "starting services"
bash scripts/services.sh up
source "${SHOAL_HOME:-$repo/.shoal}/env"

say "building local images"
bash scripts/images/build.sh

say "deploying contracts to the local chain"
SHOAL_HEARTBEAT_TTL=${SHOAL_HEARTBEAT_TTL:-30} SHOAL_TIMELOCK_DELAY=${SHOAL_TIMELOCK_DELAY:-60} \
  npx hardhat run scripts/deploy.ts --network localhost

say "services"
bash scripts/services.sh status
echo "Contracts: deployments/localhost.json. Environment for clients: source .shoal/env" >&2

say "console (static web app: reads the chain and MQTT from the browser)"
if npm run -s build:console >/dev/null && node_modules/.bin/ts-node --transpile-only console/serve.ts start; then
  export SHOAL_CONSOLE_URL=http://127.0.0.1:${SHOAL_CONSOLE_PORT:-4173}/
else
  echo "The console did not start (see .shoal/logs/console.log); the fleet starts without it." >&2
fi

say "fleet"
exec "${fleet[@]}" up "$@"
