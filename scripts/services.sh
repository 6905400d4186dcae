#!/usr/bin/env bash
# Shoal's local services: Docker Engine, Kubo (IPFS), Mosquitto (MQTT) and a Hardhat node, all on
# 127.0.0.1. Installs what is missing, starts what is not running, and records the PID of every
# process it starts so that `down` stops only those. Idempotent: `up` twice is a no-op.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/services.sh <command> [service...]

Commands:
  up [service...]     install what is missing and start the services (default: all)
  down [service...]   stop the services this script started (recorded PIDs only)
  status              report each service: running (started here), external, or stopped
  env                 print the environment (URLs, sockets) that clients should use
  help                this text

Services: docker kubo mosquitto chain

Settings (environment):
  SHOAL_HOME           state dir: PIDs, logs, Kubo repo, Mosquitto config  [<repo>/.shoal]
  SHOAL_CACHE          machine-wide cache (the Kubo binary)   [${XDG_CACHE_HOME:-~/.cache}/shoal]
  SHOAL_CHAIN_PORT     Hardhat node JSON-RPC port                          [8545]
  SHOAL_KUBO_API_PORT  Kubo RPC API port                                   [5401]
  SHOAL_MQTT_PORT      Mosquitto port                                      [1883]
  SHOAL_MQTT_WS_PORT   Mosquitto's MQTT-over-WebSockets port (the console)  [MQTT port + 1]
  SHOAL_KUBO_SWARM_PORT  Kubo swarm port (private IPFS swarm)              [Kubo API port + 2]
  SHOAL_KUBO_SWARM_HOST  Kubo swarm address (the uplink)          [SHOAL_BIND_ADDRESS, else 127.0.0.1]
  SHOAL_SWARM_KEY      the fleet's swarm key, made on first start          [$SHOAL_HOME/swarm.key]
  SHOAL_KUBO_VERSION   Kubo version to use or build                        [v0.42.0]
  SHOAL_BIND_ADDRESS   a second address the chain, the broker and Kubo listen on: the device
                       bridge's (npm start sets it for isolated devices)   [none]
  SHOAL_CHAIN_BLOCK_TIME  seconds between blocks (interval mining, like a real network;
                       the gas limit stays Hardhat's 30M); 0 = a block per transaction  [0]

Nothing listens on anything but 127.0.0.1, unless SHOAL_BIND_ADDRESS names the bridge of the
project's device network (docs/architecture.md, "Device hosts"): then the chain (through a
forwarder), the broker and Kubo (API, and a swarm on that address in the fleet's private network:
swarm key $SHOAL_HOME/swarm.key) listen there too. A running service whose bind address differs is
restarted. Docker is a machine-wide service: when one already answers `docker info`, it is used as
it is and never stopped by this script.
EOF
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL_HOME=${SHOAL_HOME:-$repo/.shoal}
SHOAL_CACHE=${SHOAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal}
SHOAL_CHAIN_PORT=${SHOAL_CHAIN_PORT:-8545}
SHOAL_KUBO_API_PORT=${SHOAL_KUBO_API_PORT:-5401}
SHOAL_MQTT_PORT=${SHOAL_MQTT_PORT:-1883}
SHOAL_MQTT_WS_PORT=${SHOAL_MQTT_WS_PORT:-$((SHOAL_MQTT_PORT + 1))}
# v0.43.x replaces go-libp2p with a fork that the Go module proxy does not serve; v0.42.0 builds.
SHOAL_KUBO_VERSION=${SHOAL_KUBO_VERSION:-v0.42.0}
SHOAL_BIND_ADDRESS=${SHOAL_BIND_ADDRESS:-}
SHOAL_CHAIN_BLOCK_TIME=${SHOAL_CHAIN_BLOCK_TIME:-0}
[[ $SHOAL_CHAIN_BLOCK_TIME =~ ^[0-9]+$ ]] ||
  { echo "SHOAL_CHAIN_BLOCK_TIME: \"$SHOAL_CHAIN_BLOCK_TIME\" is not allowed; use whole seconds (0 = automine)" >&2; exit 2; }
SHOAL_KUBO_SWARM_PORT=${SHOAL_KUBO_SWARM_PORT:-$((SHOAL_KUBO_API_PORT + 2))}
SHOAL_KUBO_SWARM_HOST=${SHOAL_KUBO_SWARM_HOST:-${SHOAL_BIND_ADDRESS:-127.0.0.1}}
SHOAL_SWARM_KEY=${SHOAL_SWARM_KEY:-$SHOAL_HOME/swarm.key}

run_dir=$SHOAL_HOME/run
log_dir=$SHOAL_HOME/logs
all_services=(docker kubo mosquitto chain)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

# ---- PID bookkeeping ------------------------------------------------------------------------
# A pid file holds "<pid> <start time>": the start time (field 22 of /proc/<pid>/stat) guards
# against a recycled PID, so `down` never signals a process it did not start.

proc_start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

record_pid() { mkdir -p "$run_dir"; echo "$2 $(proc_start_time "$2")" >"$run_dir/$1.pid"; }

# Prints the recorded PID if that very process is still alive.
live_pid() {
  local file=$run_dir/$1.pid pid start
  [[ -f $file ]] || return 1
  read -r pid start <"$file" || return 1
  [[ -n ${pid:-} && -d /proc/$pid && "$(proc_start_time "$pid")" == "${start:-}" ]] || return 1
  echo "$pid"
}

# Starts a command in its own session, detached from this shell, logging to logs/<name>.log.
spawn() {
  local name=$1
  shift
  mkdir -p "$log_dir"
  setsid "$@" >>"$log_dir/$name.log" 2>&1 </dev/null &
  record_pid "$name" $!
}

# Waits until "$@" succeeds, or fails naming the service and its log.
wait_for() {
  local name=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$name did not become ready within ${seconds}s; see $log_dir/$name.log"
    fi
    if [[ -f $run_dir/$name.pid ]] && ! live_pid "$name" >/dev/null; then
      tail -n 20 "$log_dir/$name.log" >&2 || true
      die "$name exited during start-up; see $log_dir/$name.log"
    fi
    sleep 0.3
  done
}

stop_recorded() {
  local name=$1 pid
  if ! pid=$(live_pid "$name"); then
    rm -f "$run_dir/$name.pid"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    log "$name did not stop within 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$run_dir/$name.pid"
}

# The bind address a service was started with ("" for loopback only): a change restarts it.
bind_changed() { [[ $(cat "$run_dir/$1.bind" 2>/dev/null || true) != "$SHOAL_BIND_ADDRESS" ]]; }
record_bind() { echo "$SHOAL_BIND_ADDRESS" >"$run_dir/$1.bind"; }

need_root_apt() {
  command -v apt-get >/dev/null || die "$1 is missing and this is not a Debian/Ubuntu system; install $2 yourself"
  [[ $(id -u) -eq 0 ]] || die "$1 is missing; run as root, or install $2 yourself (apt-get install $2)"
}

apt_updated=false
apt_install() {
  need_root_apt "$1" "${*:2}"
  if ! $apt_updated; then
    log "apt-get update"
    apt-get update -qq >/dev/null
    apt_updated=true
  fi
  log "installing ${*:2} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- docker --------------------------------------------------------------------------------

docker_up() {
  if docker info >/dev/null 2>&1; then
    live_pid docker >/dev/null || log "docker: using the running Docker Engine"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    apt_install dockerd docker.io
  fi
  command -v docker >/dev/null || apt_install docker docker-cli
  [[ $(id -u) -eq 0 ]] || die "Docker Engine is not running and starting dockerd needs root"
  log "starting dockerd"
  spawn docker dockerd --host unix:///var/run/docker.sock
  wait_for docker 60 docker info
}

docker_status() {
  if live_pid docker >/dev/null; then
    echo "docker     running (pid $(live_pid docker), started here)  unix:///var/run/docker.sock"
  elif docker info >/dev/null 2>&1; then
    echo "docker     external (not started here)  ${DOCKER_HOST:-unix:///var/run/docker.sock}"
  else
    echo "docker     stopped"
  fi
}

# ---- kubo ----------------------------------------------------------------------------------

# scripts/kubo-node.sh is the one place that says where the Kubo binary is; here a missing one is
# not an error yet (kubo_build makes it), so its message is dropped.
kubo_bin() {
  SHOAL_CACHE=$SHOAL_CACHE SHOAL_KUBO_VERSION=$SHOAL_KUBO_VERSION bash "$repo/scripts/kubo-node.sh" bin 2>/dev/null
}

# Builds Kubo from the Go module proxy, once per machine, into the cache outside the repo.
# `go install pkg@version` refuses Kubo's go.mod (it has an exclude block), so download the module
# and build it from a writable copy.
kubo_build() {
  local out=$SHOAL_CACHE/bin/ipfs-$SHOAL_KUBO_VERSION
  command -v go >/dev/null || die "kubo: no ipfs binary found and no Go toolchain to build one; install Kubo ($SHOAL_KUBO_VERSION) or Go"
  log "kubo: building $SHOAL_KUBO_VERSION from the Go module proxy (once per machine; a few minutes)"
  local src
  src=$(go mod download -json "github.com/ipfs/kubo@$SHOAL_KUBO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || die "kubo: go mod download github.com/ipfs/kubo@$SHOAL_KUBO_VERSION gave no source directory"
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-kubo.XXXXXX")
  cp -r "$src/." "$work"
  chmod -R u+w "$work"
  mkdir -p "$SHOAL_CACHE/bin"
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" ./cmd/ipfs) >"$SHOAL_CACHE/kubo-build.log" 2>&1 ||
    {
      tail -n 20 "$SHOAL_CACHE/kubo-build.log" >&2
      rm -rf "$work"
      die "kubo: go build failed; see $SHOAL_CACHE/kubo-build.log"
    }
  rm -rf "$work"
  mv "$out.tmp" "$out"
  log "kubo: built $out"
}

kubo_api() { echo "/ip4/127.0.0.1/tcp/$SHOAL_KUBO_API_PORT"; }

kubo_up() {
  if live_pid kubo >/dev/null; then
    bind_changed kubo || return 0
    stop_recorded kubo
  fi
  local bin
  bin=$(kubo_bin) || {
    # One build per machine: a second `up` (another checkout, a parallel test run) waits for the
    # first one's binary instead of compiling the same tree again on the same cores.
    mkdir -p "$SHOAL_CACHE"
    exec 9>"$SHOAL_CACHE/kubo-build.lock"
    flock 9
    kubo_bin >/dev/null || kubo_build
    exec 9>&-
    bin=$(kubo_bin)
  }
  export IPFS_PATH=$SHOAL_HOME/ipfs
  # The publisher node of the fleet's private swarm (scripts/kubo-node.sh): the fleet's swarm key,
  # no bootstrap peers, no DHT; swarm at a fixed port (on the bridge for isolated devices, else on
  # loopback), since `app:publish` records this
  # node's address on chain for devices to fetch from.
  SHOAL_IPFS_BIN=$bin bash "$repo/scripts/kubo-node.sh" swarm-key "$SHOAL_SWARM_KEY"
  SHOAL_IPFS_BIN=$bin bash "$repo/scripts/kubo-node.sh" configure "$IPFS_PATH" "$(kubo_api)" \
    "/ip4/$SHOAL_KUBO_SWARM_HOST/tcp/$SHOAL_KUBO_SWARM_PORT" "$SHOAL_SWARM_KEY" ||
    die "kubo: could not configure $IPFS_PATH"
  if port_open "$SHOAL_KUBO_SWARM_PORT"; then
    die "kubo: 127.0.0.1:$SHOAL_KUBO_SWARM_PORT is already taken by another process; set SHOAL_KUBO_SWARM_PORT"
  fi
  if [[ -n $SHOAL_BIND_ADDRESS ]]; then
    # The publisher node of isolated devices: its API on the bridge too, for the device hosts.
    "$bin" config --json Addresses.API "[\"$(kubo_api)\", \"/ip4/$SHOAL_BIND_ADDRESS/tcp/$SHOAL_KUBO_API_PORT\"]"
  fi
  log "kubo: starting $("$bin" version --number) (API 127.0.0.1:$SHOAL_KUBO_API_PORT${SHOAL_BIND_ADDRESS:+ and $SHOAL_BIND_ADDRESS}, private swarm $SHOAL_KUBO_SWARM_HOST:$SHOAL_KUBO_SWARM_PORT)"
  LIBP2P_FORCE_PNET=1 spawn kubo "$bin" daemon
  record_bind kubo
  wait_for kubo 60 curl -fsS -X POST "http://127.0.0.1:$SHOAL_KUBO_API_PORT/api/v0/id"
}

kubo_status() {
  if live_pid kubo >/dev/null; then
    echo "kubo       running (pid $(live_pid kubo))  http://127.0.0.1:$SHOAL_KUBO_API_PORT"
  elif curl -fsS -X POST "http://127.0.0.1:$SHOAL_KUBO_API_PORT/api/v0/id" >/dev/null 2>&1; then
    echo "kubo       external (not started here)  http://127.0.0.1:$SHOAL_KUBO_API_PORT"
  else
    echo "kubo       stopped"
  fi
}

# ---- mosquitto -----------------------------------------------------------------------------

# The broker's users, created once per SHOAL_HOME (passwords in files readable only by the owner):
#   shoal-admin   administers the dynamic security plugin and may publish and read everything (the
#                 fleet provisions devices with it; tests and benchmarks use it as their broker user)
#   shoal-viewer  read-only: subscribe to shoal/# (the fleet view, the console)
# Roles the fleet gives each device: shoal-device-<id> (publish under shoal/v1/devices/<id>/#),
# shoal-bridge (publish the chain-derived topics) and shoal-reader (subscribe to shoal/#).
mosquitto_credentials() {
  local dir=$1 file=$1/dynamic-security.json
  [[ -f $file ]] && return 0
  command -v mosquitto_ctrl >/dev/null || die "mosquitto: mosquitto_ctrl is missing (package mosquitto-clients)"
  (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$dir/admin.password" &&
    head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$dir/viewer.password")
  # mosquitto_ctrl hashes the passwords (PBKDF2-SHA512) into a file of its own for each user.
  local tmp
  tmp=$(mktemp -d)
  mosquitto_ctrl dynsec init "$tmp/admin.json" shoal-admin "$(cat "$dir/admin.password")" >/dev/null
  mosquitto_ctrl dynsec init "$tmp/viewer.json" shoal-viewer "$(cat "$dir/viewer.password")" >/dev/null
  (umask 077 && node - "$tmp/admin.json" "$tmp/viewer.json" >"$file" <<'JS'
const fs = require("node:fs");
const [adminFile, viewerFile] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(adminFile, "utf8"));
const viewer = JSON.parse(fs.readFileSync(viewerFile, "utf8")).clients[0];
const acl = (acltype, topic) => ({ acltype, topic, allow: true });
// The admin also publishes anywhere: tests and benchmarks act as any publisher (and as an attacker).
config.roles[0].acls.push(acl("publishClientSend", "#"));
config.roles.push(
  { rolename: "shoal-reader", acls: [acl("subscribePattern", "shoal/#"), acl("unsubscribePattern", "shoal/#")] },
  {
    rolename: "shoal-bridge",
    acls: [
      acl("publishClientSend", "shoal/v1/chain/#"),
      acl("publishClientSend", "shoal/v1/placements/+/state"),
      acl("publishClientSend", "shoal/v1/deployments/+/state"),
      acl("publishClientSend", "shoal/v1/devices/+/chain"),
    ],
  },
);
viewer.textName = "read-only (fleet view, console)";
viewer.roles = [{ rolename: "shoal-reader" }];
config.clients.push(viewer);
process.stdout.write(JSON.stringify(config, null, 2));
JS
  )
  rm -rf "$tmp"
}

mosquitto_up() {
  if live_pid mosquitto >/dev/null; then
    bind_changed mosquitto || return 0
    stop_recorded mosquitto
  fi
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || apt_install mosquitto mosquitto
  local bin
  bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  if port_open "$SHOAL_MQTT_PORT"; then
    die "mosquitto: 127.0.0.1:$SHOAL_MQTT_PORT is already taken by another process; set SHOAL_MQTT_PORT"
  fi
  if port_open "$SHOAL_MQTT_WS_PORT"; then
    die "mosquitto: 127.0.0.1:$SHOAL_MQTT_WS_PORT is already taken by another process; set SHOAL_MQTT_WS_PORT"
  fi
  local dir=$SHOAL_HOME/mosquitto plugin
  mkdir -p "$dir/data"
  plugin=$(compgen -G "/usr/lib/*/mosquitto_dynamic_security.so" | head -n1 || true)
  [[ -n $plugin ]] || plugin=$(dpkg -L mosquitto 2>/dev/null | grep -m1 'mosquitto_dynamic_security.so$' || true)
  [[ -n $plugin ]] || die "mosquitto: the dynamic security plugin (mosquitto_dynamic_security.so) is missing"
  mosquitto_credentials "$dir"
  rm -f "$dir/acl" # the inactive ACL of earlier versions; the dynamic security plugin holds the ACL
  cat >"$dir/mosquitto.conf" <<EOF
# Generated by scripts/services.sh; edits are overwritten on the next start.
# Authenticated broker (docs/mqtt.md, "Authentication and ACL"): no anonymous clients; clients,
# roles and ACLs live in the dynamic security plugin's file and change at run time over
# \$CONTROL/dynamic-security/v1 (the fleet provisions each device's credentials at enrollment).
# A read-only listener (the console's websockets) uses the shoal-viewer user of SHOAL_MQTT_VIEW_URL.
per_listener_settings false
allow_anonymous false
plugin $plugin
plugin_opt_config_file $dir/dynamic-security.json
listener $SHOAL_MQTT_PORT 127.0.0.1
${SHOAL_BIND_ADDRESS:+listener $SHOAL_MQTT_PORT $SHOAL_BIND_ADDRESS}
# MQTT over WebSockets for the console in the browser, which logs in as the read-only
# shoal-viewer (SHOAL_MQTT_WS_URL). Mosquitto 2.0.11 hands the word after the port to libwebsockets as
# an interface: "lo" binds loopback only, while 127.0.0.1 never binds (the listener then serves
# every interface) and bind_interface is ignored for websockets (checked from a network namespace).
listener $SHOAL_MQTT_WS_PORT lo
protocol websockets
persistence true
persistence_location $dir/data/
# A backlog of bridged chain events arrives faster than a slow subscriber acknowledges it; the
# default queue (1,000) would drop QoS 1 messages for it. See docs/mqtt.md.
max_queued_messages 100000
log_dest stdout
log_type error
log_type warning
log_type notice
user $(id -un)
EOF
  log "mosquitto: starting (127.0.0.1:$SHOAL_MQTT_PORT, websockets 127.0.0.1:$SHOAL_MQTT_WS_PORT)"
  spawn mosquitto "$bin" -c "$dir/mosquitto.conf"
  wait_for mosquitto 20 port_open "$SHOAL_MQTT_PORT"
  wait_for mosquitto 20 port_open "$SHOAL_MQTT_WS_PORT"
  record_bind mosquitto
}

mosquitto_status() {
  if live_pid mosquitto >/dev/null; then
    echo "mosquitto  running (pid $(live_pid mosquitto))  mqtt://127.0.0.1:$SHOAL_MQTT_PORT"
  elif port_open "$SHOAL_MQTT_PORT"; then
    echo "mosquitto  external (not started here)  mqtt://127.0.0.1:$SHOAL_MQTT_PORT"
  else
    echo "mosquitto  stopped"
  fi
}

# ---- chain (Hardhat node) ------------------------------------------------------------------

rpc_ready() {
  curl -fsS -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
    "http://127.0.0.1:$SHOAL_CHAIN_PORT" | grep -q result
}

chain_up() {
  if live_pid chain >/dev/null; then
    chain_uplink_up
    return 0
  fi
  if port_open "$SHOAL_CHAIN_PORT"; then
    die "chain: 127.0.0.1:$SHOAL_CHAIN_PORT is already taken by another process; set SHOAL_CHAIN_PORT"
  fi
  [[ -x $repo/node_modules/.bin/hardhat ]] || die "chain: node_modules is missing; run npm ci first"
  log "chain: starting a Hardhat node (http://127.0.0.1:$SHOAL_CHAIN_PORT)"
  # http-keep-alive.js: keep-alive sockets outlive a busy client's stalls (see the file).
  (cd "$repo" && NODE_OPTIONS="${NODE_OPTIONS:-} --require $repo/scripts/lib/http-keep-alive.js" \
    spawn chain node_modules/.bin/hardhat node --hostname 127.0.0.1 --port "$SHOAL_CHAIN_PORT")
  wait_for chain 60 rpc_ready
  if ((SHOAL_CHAIN_BLOCK_TIME > 0)); then
    # Interval mining: transactions wait in the mempool and a block every N s takes them all (up to
    # the 30M gas limit), as on a real network; automine (a block per transaction) stays the default.
    log "chain: interval mining, a block every ${SHOAL_CHAIN_BLOCK_TIME} s"
    chain_rpc evm_setAutomine false >/dev/null
    chain_rpc evm_setIntervalMining "$((SHOAL_CHAIN_BLOCK_TIME * 1000))" >/dev/null
  fi
  chain_uplink_up
}

chain_rpc() {
  curl -fsS -H 'content-type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":[${2:-}]}" \
    "http://127.0.0.1:$SHOAL_CHAIN_PORT"
}

# `hardhat node --hostname` takes one address: a forwarder serves the chain on the bind address.
chain_uplink_up() {
  if live_pid chain-uplink >/dev/null; then
    bind_changed chain-uplink || return 0
    stop_recorded chain-uplink
  fi
  record_bind chain-uplink
  [[ -n $SHOAL_BIND_ADDRESS ]] || return 0
  log "chain: also on $SHOAL_BIND_ADDRESS:$SHOAL_CHAIN_PORT (forwarder)"
  spawn chain-uplink node "$repo/scripts/lib/tcp-forward.js" "$SHOAL_BIND_ADDRESS" "$SHOAL_CHAIN_PORT" 127.0.0.1 "$SHOAL_CHAIN_PORT"
  wait_for chain-uplink 20 bash -c "exec 3<>/dev/tcp/$SHOAL_BIND_ADDRESS/$SHOAL_CHAIN_PORT"
}

chain_status() {
  if live_pid chain >/dev/null; then
    echo "chain      running (pid $(live_pid chain))  http://127.0.0.1:$SHOAL_CHAIN_PORT"
  elif rpc_ready 2>/dev/null; then
    echo "chain      external (not started here)  http://127.0.0.1:$SHOAL_CHAIN_PORT"
  else
    echo "chain      stopped"
  fi
}

# ---- commands ------------------------------------------------------------------------------

# The broker URLs carry the admin's and the viewer's credentials: the env file is the owner's only.
print_env() {
  local admin="" viewer=""
  [[ -f $SHOAL_HOME/mosquitto/admin.password ]] && admin=$(cat "$SHOAL_HOME/mosquitto/admin.password")
  [[ -f $SHOAL_HOME/mosquitto/viewer.password ]] && viewer=$(cat "$SHOAL_HOME/mosquitto/viewer.password")
  cat <<EOF
export SHOAL_HOME=$SHOAL_HOME
export SHOAL_RPC_URL=http://127.0.0.1:$SHOAL_CHAIN_PORT
export SHOAL_KUBO_URL=http://127.0.0.1:$SHOAL_KUBO_API_PORT
export SHOAL_SWARM_KEY=$SHOAL_SWARM_KEY
export SHOAL_MQTT_URL=mqtt://${admin:+shoal-admin:$admin@}127.0.0.1:$SHOAL_MQTT_PORT
export SHOAL_MQTT_VIEW_URL=mqtt://${viewer:+shoal-viewer:$viewer@}127.0.0.1:$SHOAL_MQTT_PORT
export SHOAL_MQTT_WS_URL=ws://${viewer:+shoal-viewer:$viewer@}127.0.0.1:$SHOAL_MQTT_WS_PORT
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export SHOAL_BIND_ADDRESS=$SHOAL_BIND_ADDRESS
EOF
}

check_services() {
  local s
  for s in "$@"; do
    [[ " ${all_services[*]} " == *" $s "* ]] || die "unknown service '$s'; choose from: ${all_services[*]}"
  done
}

main() {
  local cmd=${1:-help}
  shift || true
  local services=("$@")
  ((${#services[@]})) || services=("${all_services[@]}")
  check_services "${services[@]}"
  command -v curl >/dev/null || apt_install curl curl
  mkdir -p "$run_dir" "$log_dir"
  case $cmd in
    up)
      local s
      for s in "${services[@]}"; do "${s}_up"; done
      (umask 077 && print_env >"$SHOAL_HOME/env")
      ;;
    down)
      local i
      # Reverse order: the chain and the brokers go before the engine they might depend on.
      for ((i = ${#services[@]} - 1; i >= 0; i--)); do
        [[ ${services[i]} != chain ]] || stop_recorded chain-uplink
        stop_recorded "${services[i]}"
        rm -f "$run_dir/${services[i]}.bind"
      done
      ;;
    status) for s in "${all_services[@]}"; do "${s}_status"; done ;;
    env) print_env ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
