#!/usr/bin/env bash
# Builds Shoal's demo images locally, without any registry: each image is a rootfs made from
# Debian's busybox-static (plus a static C binary for the load generator), imported with
# `docker import`. See --help.
set -euo pipefail

readonly SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HASH_LABEL="dev.shoal.inputs-sha256"
readonly APP_UID=10001
readonly APP_GID=10001
# Bump when the recipe changes in a way the hashed inputs do not show.
readonly RECIPE_VERSION=1

readonly IMAGE_BASE="shoal/base:1"
readonly IMAGE_WEB="shoal/demo-web:1.0.0"
readonly IMAGE_LOADGEN="shoal/demo-loadgen:1.0.0"

usage() {
  cat <<EOF
Usage: scripts/images/build.sh [--force] [--quiet] [IMAGE...]

Builds Shoal's local demo images with no registry (never docker pull):
  ${IMAGE_BASE}               busybox only
  ${IMAGE_WEB}        busybox httpd serving a page with app name, version and hostname on :8080
  ${IMAGE_LOADGEN}   load generator (scripts/images/loadgen/loadgen.c) with env-driven CPU and
                              memory profiles; see the header of loadgen.c for its variables

IMAGE is one of: base, demo-web, demo-loadgen (default: all three).

Each image is a single layer imported with 'docker import' from a rootfs built here. Images carry
the label ${HASH_LABEL}: the SHA-256 of the exact rootfs tar and image config. An image whose label
matches is skipped, so the script is idempotent and a changed source rebuilds.

All images run as uid:gid ${APP_UID}:${APP_GID}, work with a read-only root filesystem, all
capabilities dropped and no-new-privileges; they need a writable /tmp (a tmpfs).

Needs: a running Docker Engine, busybox-static (/bin/busybox, static) and gcc with the static C
library (libc6-dev). Missing packages are installed with apt-get when run as root.

Options:
  --force    rebuild even if an image with the same inputs hash exists
  --quiet    print only errors and the final summary
  -h, --help show this help
EOF
}

force=0
quiet=0
targets=()
while (($# > 0)); do
  case "$1" in
    --force) force=1 ;;
    --quiet) quiet=1 ;;
    -h | --help) usage; exit 0 ;;
    base | demo-web | demo-loadgen) targets+=("$1") ;;
    *) echo "build.sh: unknown argument \"$1\"; use --force, --quiet, --help or one of base, demo-web, demo-loadgen" >&2; exit 2 ;;
  esac
  shift
done
((${#targets[@]} > 0)) || targets=(base demo-web demo-loadgen)

log() { ((quiet)) || echo "[images] $*"; }
fail() { echo "[images] error: $*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------------------------------

apt_install() {
  local packages=("$@")
  if [[ $(id -u) -ne 0 ]]; then
    fail "missing ${packages[*]}; install them with: sudo apt-get install -y ${packages[*]}"
  fi
  log "installing ${packages[*]} with apt-get (running as root)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; } ||
    fail "apt-get could not install ${packages[*]}"
}

is_static() { [[ -x "$1" ]] && ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }

BUSYBOX=""
find_busybox() {
  local candidate
  for candidate in /bin/busybox /usr/bin/busybox; do
    if is_static "$candidate"; then BUSYBOX="$candidate"; return 0; fi
  done
  return 1
}

command -v docker >/dev/null || fail "the docker CLI is not installed; install docker.io (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || fail "cannot reach the Docker Engine (${DOCKER_HOST:-unix:///var/run/docker.sock}); start dockerd first"

if ! find_busybox; then
  apt_install busybox-static
  find_busybox || fail "busybox-static is installed but no static /bin/busybox was found"
fi

need_gcc=0
for target in "${targets[@]}"; do [[ $target == demo-loadgen ]] && need_gcc=1; done
if ((need_gcc)); then
  if ! command -v gcc >/dev/null || [[ ! -f $(gcc -print-file-name=libc.a) ]]; then
    apt_install gcc libc6-dev
  fi
fi

# --- helpers ---------------------------------------------------------------------------------------

workdir="$(mktemp -d "${TMPDIR:-/tmp}/shoal-images.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT

# A reproducible tar of a directory: sorted, fixed owner and mtime, so equal inputs give equal bytes.
reproducible_tar() {
  tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu -cf "$2" .
}

# The minimal rootfs every image starts from: busybox with its applets, users, an empty /tmp.
make_base_rootfs() {
  local root="$1" applet
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
  cp "$BUSYBOX" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:%d:%d:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    "$APP_UID" "$APP_GID" >"$root/etc/passwd"
  printf 'root:x:0:\napp:x:%d:\nnogroup:x:65534:\n' "$APP_GID" >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
}

# build_image REF ROOTFS CHANGE... : imports ROOTFS as REF unless an image with the same hash exists.
build_image() {
  local ref="$1" root="$2"
  shift 2
  local changes=("$@") tarball="$workdir/$(echo "$ref" | tr '/:' '__').tar"
  reproducible_tar "$root" "$tarball"
  local hash
  hash="$({ echo "recipe=$RECIPE_VERSION"; printf '%s\n' "${changes[@]}"; sha256sum <"$tarball"; } | sha256sum | cut -d' ' -f1)"
  local existing
  existing="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$ref" 2>/dev/null || true)"
  if [[ $existing == "$hash" && $force -eq 0 ]]; then
    log "$ref is up to date (inputs ${hash:0:12}), skipped"
    summary+=("$ref: up to date")
    return 0
  fi
  local started=$SECONDS args=()
  local change
  for change in "${changes[@]}"; do args+=(--change "$change"); done
  args+=(--change "LABEL $HASH_LABEL=$hash")
  log "importing $ref (inputs ${hash:0:12})"
  docker import "${args[@]}" --message "shoal scripts/images/build.sh" "$tarball" "$ref" >/dev/null
  local size
  size="$(docker image inspect --format '{{ .Size }}' "$ref")"
  log "built $ref: $((size / 1024)) KiB in $((SECONDS - started)) s"
  summary+=("$ref: built, $((size / 1024)) KiB")
}

common_labels=(
  "LABEL org.opencontainers.image.vendor=Shoal"
  "LABEL org.opencontainers.image.source=scripts/images/build.sh"
  "USER $APP_UID:$APP_GID"
  "WORKDIR /tmp"
  "ENV PATH=/bin"
)

# --- images ----------------------------------------------------------------------------------------

build_base() {
  local root="$workdir/base"
  make_base_rootfs "$root"
  build_image "$IMAGE_BASE" "$root" "${common_labels[@]}" \
    "LABEL org.opencontainers.image.title=shoal-base" \
    "LABEL org.opencontainers.image.version=1" \
    'CMD ["/bin/sh"]'
}

build_demo_web() {
  local root="$workdir/demo-web"
  make_base_rootfs "$root"
  mkdir -p "$root/usr/share/demo-web"
  install -m 0755 "$SCRIPT_DIR/demo-web/entrypoint.sh" "$root/usr/share/demo-web/entrypoint.sh"
  build_image "$IMAGE_WEB" "$root" "${common_labels[@]}" \
    "LABEL org.opencontainers.image.title=demo-web" \
    "LABEL org.opencontainers.image.version=1.0.0" \
    "ENV APP_NAME=demo-web" \
    "ENV APP_VERSION=1.0.0" \
    "ENV PORT=8080" \
    "EXPOSE 8080/tcp" \
    'ENTRYPOINT ["/usr/share/demo-web/entrypoint.sh"]'
}

build_demo_loadgen() {
  local root="$workdir/demo-loadgen"
  make_base_rootfs "$root"
  mkdir -p "$root/usr/local/bin"
  log "compiling loadgen.c (gcc -O2 -static)"
  gcc -O2 -static -pthread -s -Wall -Wextra -Werror -o "$root/usr/local/bin/loadgen" \
    "$SCRIPT_DIR/loadgen/loadgen.c" -lm
  build_image "$IMAGE_LOADGEN" "$root" "${common_labels[@]}" \
    "LABEL org.opencontainers.image.title=demo-loadgen" \
    "LABEL org.opencontainers.image.version=1.0.0" \
    "ENV PROFILE=steady" \
    'ENTRYPOINT ["/usr/local/bin/loadgen"]'
}

summary=()
total_started=$SECONDS
for target in "${targets[@]}"; do
  case "$target" in
    base) build_base ;;
    demo-web) build_demo_web ;;
    demo-loadgen) build_demo_loadgen ;;
  esac
done
echo "[images] done in $((SECONDS - total_started)) s: $(IFS=';'; echo "${summary[*]}" | sed 's/;/; /g')"
