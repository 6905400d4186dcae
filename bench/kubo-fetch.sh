#!/usr/bin/env bash
# Where a bitswap fetch spends its time (issue 14, bench/results/delivery.md, "Where the time
# goes"): two or three fresh Kubo nodes of one private swarm on 127.0.0.1 (scripts/kubo-node.sh),
# 200 MiB of random data added on the publisher P with Shoal's import settings (CIDv1, raw leaves,
# 1 MiB chunks), then fetched on a fresh node A, timed, with the CPU seconds each daemon used.
#
#   bash bench/kubo-fetch.sh MODE [INTERNAL_JSON] [--profile]
#     MODE  cat       ipfs cat on A, read to the end (what delivery does)
#           pin       ipfs pin add on A (fetches the DAG with Kubo's concurrent walk)
#           pincat    pin add in the background and cat at the same time (prefetch while streaming)
#           multicat  cat on A from two providers at once (P and Q, which pinned it first)
#     INTERNAL_JSON  a value for Kubo's `Internal` config on every node, e.g.
#           '{"Bitswap":{"MaxOutstandingBytesPerPeer":67108864,"EngineTaskWorkerCount":16}}'
#     --profile  also writes 4 s CPU profiles of A and P (go tool pprof -top FILE)
#
# Ports 29701-29706; every daemon is stopped by its recorded PID; the temp dir is removed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:?usage: bench/kubo-fetch.sh cat|pin|pincat|multicat [INTERNAL_JSON] [--profile]}
INTERNAL=${2:-}
[[ $INTERNAL == --profile ]] && INTERNAL=""
PROFILE=0
for a in "$@"; do [[ $a == --profile ]] && PROFILE=1; done
case $MODE in cat | pin | pincat | multicat) ;; *)
  echo "MODE is \"$MODE\"; use cat, pin, pincat or multicat" >&2
  exit 2
  ;;
esac
BIN=$(bash "$ROOT/scripts/kubo-node.sh" bin)
D=$(mktemp -d /tmp/shoal-kubo-fetch-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
  rm -rf "$D"
}
trap cleanup EXIT
bash "$ROOT/scripts/kubo-node.sh" swarm-key "$D/swarm.key" 2>/dev/null
head -c $((200 * 1024 * 1024)) /dev/urandom >"$D/data"

declare -A API PIDOF
start() { # name api-port swarm-port
  local r=$D/$1
  bash "$ROOT/scripts/kubo-node.sh" configure "$r" "/ip4/127.0.0.1/tcp/$2" "/ip4/127.0.0.1/tcp/$3" "$D/swarm.key" >/dev/null
  [[ -n $INTERNAL ]] && IPFS_PATH=$r "$BIN" config --json Internal "$INTERNAL"
  IPFS_PATH=$r LIBP2P_FORCE_PNET=1 "$BIN" daemon >"$r.log" 2>&1 &
  PIDS+=($!)
  PIDOF[$1]=$!
  API[$1]=$2
  for _ in $(seq 300); do
    curl -sf -X POST "http://127.0.0.1:$2/api/v0/id" >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "Kubo $1 did not start:" >&2
  cat "$r.log" >&2
  exit 1
}
on() { IPFS_PATH=$D/$1 "$BIN" "${@:2}"; }
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/${PIDOF[$1]}/stat"; }

start P 29701 29702
start A 29703 29704
CID=$(on P add -Q --cid-version=1 --raw-leaves --chunker=size-1048576 "$D/data")
P_ADDR=/ip4/127.0.0.1/tcp/29702/p2p/$(on P id -f '<id>')
if [[ $MODE == multicat ]]; then
  start Q 29705 29706
  on Q swarm connect "$P_ADDR" >/dev/null
  on Q pin add "$CID" >/dev/null
  on A swarm connect "/ip4/127.0.0.1/tcp/29706/p2p/$(on Q id -f '<id>')" >/dev/null
fi
on A swarm connect "$P_ADDR" >/dev/null
if ((PROFILE)); then
  curl -s "http://127.0.0.1:${API[A]}/debug/pprof/profile?seconds=4" -o "$ROOT/kubo-fetch-A.prof" &
  curl -s "http://127.0.0.1:${API[P]}/debug/pprof/profile?seconds=4" -o "$ROOT/kubo-fetch-P.prof" &
  sleep 0.2
fi
declare -A CPU0
for n in "${!PIDOF[@]}"; do CPU0[$n]=$(cpu "$n"); done
t0=$(date +%s.%N)
case $MODE in
  cat | multicat) on A cat "$CID" | wc -c >/dev/null ;;
  pin) on A pin add "$CID" >/dev/null ;;
  pincat)
    on A pin add "$CID" >/dev/null &
    on A cat "$CID" | wc -c >/dev/null
    wait $!
    ;;
esac
t1=$(date +%s.%N)
used=""
for n in $(printf '%s\n' "${!PIDOF[@]}" | sort); do
  used+=" $n $(echo "$(cpu "$n") - ${CPU0[$n]}" | bc)"
done
((PROFILE)) && wait
printf '%s %s: %.2f s; CPU s used:%s; load %s\n' "$MODE" "${INTERNAL:-default}" "$(echo "$t1 - $t0" | bc)" "$used" "$(cut -d' ' -f1 /proc/loadavg)"
