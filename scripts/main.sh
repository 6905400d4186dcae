#!/usr/bin/env bash
# The main job: the local edge stack on one machine. Installs what is missing, starts Docker, Kubo,
# Mosquitto and a Hardhat node on 127.0.0.1, deploys the contracts, builds the demo images, and
# prints where everything is. The stack keeps running; `npm run down` stops what this started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"

case ${1:-} in
  -h | --help)
    cat <<'TXT'
Usage: npm start            bring the local stack up (idempotent) and print its status
       npm run down         stop the processes the stack started (recorded PIDs only)
       npm run services -- status

Ports: chain 8545, Kubo API 5401, MQTT 1883 (SHOAL_CHAIN_PORT, SHOAL_KUBO_API_PORT,
SHOAL_MQTT_PORT override them). State lives in .shoal/; the Kubo binary is cached in ~/.cache/shoal.
TXT
    exit 0
    ;;
  "") ;;
  *)
    echo "unknown argument '$1'; see npm start -- --help" >&2
    exit 2
    ;;
esac

ensure_npm_packages

say "compiling contracts"
npx hardhat compile --quiet

say "starting services"
bash scripts/services.sh up
source "${SHOAL_HOME:-$repo/.shoal}/env"

say "building local images"
bash scripts/images/build.sh

say "deploying contracts to the local chain"
npx hardhat run scripts/deploy.ts --network localhost

say "status"
bash scripts/services.sh status
echo
echo "Contracts: deployments/localhost.json. Environment for clients: source .shoal/env"
echo "Stop with: npm run down"
