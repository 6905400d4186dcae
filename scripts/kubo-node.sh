#!/usr/bin/env bash
# Kubo nodes of a Shoal fleet's private IPFS swarm (docs/architecture.md, "Private swarm"): one
# swarm key per fleet, no public bootstrap peers, no DHT, no relay, no autoconf; nodes find each
# other only through the addresses the chain names (device endpoints, version providers).
# Used by scripts/services.sh (the publisher node), by the per-device nodes of a fleet and by the
# tests. Every node of the fleet must run with LIBP2P_FORCE_PNET=1: it then refuses to start
# without the key instead of silently joining the public network.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/kubo-node.sh <command> ...

Commands:
  swarm-key FILE
      Writes a new random swarm key to FILE (mode 600) unless FILE exists. One key per fleet: copy
      the same file into every node of the fleet, and to no one else.
  configure REPO API_MULTIADDR SWARM_MULTIADDR KEY_FILE
      Initialises the Kubo repo REPO if it has none, installs the fleet's swarm key and configures
      it as a private-swarm node: RPC API on API_MULTIADDR (keep it on loopback), swarm listening on
      SWARM_MULTIADDR (e.g. /ip4/127.0.0.1/tcp/4001 or the device's own address), gateway off.
      Re-run on every start: it is idempotent and a changed address takes effect.
  bin
      Prints the Kubo binary in use (SHOAL_IPFS_BIN, ipfs on PATH, or the cached build).

Start the node afterwards with:  LIBP2P_FORCE_PNET=1 IPFS_PATH=REPO ipfs daemon
EOF
}

die() { printf '[kubo-node] error: %s\n' "$*" >&2; exit 1; }

SHOAL_CACHE=${SHOAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal}
SHOAL_KUBO_VERSION=${SHOAL_KUBO_VERSION:-v0.42.0}

kubo_bin() {
  local cached=$SHOAL_CACHE/bin/ipfs-$SHOAL_KUBO_VERSION
  if [[ -n ${SHOAL_IPFS_BIN:-} ]]; then
    echo "$SHOAL_IPFS_BIN"
  elif command -v ipfs >/dev/null; then
    command -v ipfs
  elif [[ -x $cached ]]; then
    echo "$cached"
  else
    die "no Kubo binary: set SHOAL_IPFS_BIN, put ipfs on PATH, or run scripts/services.sh up kubo (it builds one)"
  fi
}

swarm_key() {
  local file=$1
  [[ -f $file ]] && return 0
  mkdir -p "$(dirname "$file")"
  # The format Kubo (go-libp2p pnet) reads: a 32-byte pre-shared key, hex-encoded.
  (umask 077 && printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' \
    "$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')" >"$file.tmp" && mv "$file.tmp" "$file")
  echo "[kubo-node] wrote a new swarm key to $file" >&2
}

check_multiaddr() {
  [[ $2 =~ ^/ip[46]/[^/]+/tcp/[0-9]+$ ]] || die "$1 \"$2\" is not a TCP multiaddr; give one like /ip4/127.0.0.1/tcp/4001"
}

configure() {
  (($# == 4)) || die "configure needs REPO API_MULTIADDR SWARM_MULTIADDR KEY_FILE (got $# arguments)"
  local repo=$1 api=$2 swarm=$3 key=$4 bin
  check_multiaddr API_MULTIADDR "$api"
  check_multiaddr SWARM_MULTIADDR "$swarm"
  [[ -f $key ]] || die "KEY_FILE $key does not exist; make one with: scripts/kubo-node.sh swarm-key $key"
  grep -q '^/key/swarm/psk/1.0.0/$' "$key" || die "KEY_FILE $key is not a swarm key (its first line must be /key/swarm/psk/1.0.0/)"
  bin=$(kubo_bin)
  export IPFS_PATH=$repo
  if [[ ! -f $repo/config ]]; then
    mkdir -p "$repo"
    "$bin" init --empty-repo --profile=test >"$repo.init.log" 2>&1 || die "ipfs init of $repo failed; see $repo.init.log"
    rm -f "$repo.init.log"
  fi
  (umask 077 && cp "$key" "$repo/swarm.key")
  local cfg=("$bin" config)
  "${cfg[@]}" Addresses.API "$api"
  "${cfg[@]}" --json Addresses.Gateway '[]'
  "${cfg[@]}" --json Addresses.Swarm "[\"$swarm\"]"
  # Announce exactly the listen address: the endpoint other devices dial is what `ipfs id` shows.
  "${cfg[@]}" --json Addresses.Announce "[\"$swarm\"]"
  "${cfg[@]}" --json Addresses.NoAnnounce '[]'
  # Nothing towards the public network: no bootstrap peers, no DHT, no LAN discovery, no relays,
  # no autoconf fetch. Peers come from the chain (the worker's peering) and bitswap asks them.
  "${cfg[@]}" --json Bootstrap '[]'
  "${cfg[@]}" --json AutoConf.Enabled false
  "${cfg[@]}" Routing.Type none
  "${cfg[@]}" --json Discovery.MDNS.Enabled false
  "${cfg[@]}" --json Swarm.RelayClient.Enabled false
  "${cfg[@]}" --json Swarm.RelayService.Enabled false
  "${cfg[@]}" --json Swarm.Transports.Network.Websocket false
  "${cfg[@]}" --json Swarm.Transports.Network.QUIC false
  "${cfg[@]}" --json Swarm.Transports.Network.WebTransport false
  "${cfg[@]}" --json Swarm.Transports.Network.WebRTCDirect false
  # The server profile's filters block private ranges; a fleet lives on them.
  "${cfg[@]}" --json Swarm.AddrFilters '[]'
}

main() {
  local cmd=${1:-help}
  shift || true
  case $cmd in
    swarm-key)
      (($# == 1)) || die "swarm-key needs FILE"
      swarm_key "$1"
      ;;
    configure) configure "$@" ;;
    bin) kubo_bin ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
