#!/bin/sh
# demo-web: renders its page into a writable directory (the root filesystem is read-only; /tmp is
# a tmpfs) and serves it with busybox httpd. Runs as PID 1, so it forwards SIGTERM itself: the
# kernel would otherwise ignore the signal for PID 1 and `docker stop` would wait 10 s.
set -eu

name="${APP_NAME:-demo-web}"
version="${APP_VERSION:-1.0.0}"
port="${PORT:-8080}"
root="${WEB_ROOT:-/tmp/www}"
host="$(hostname)"

html() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }
json() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

if ! mkdir -p "$root" 2>/dev/null || ! [ -w "$root" ]; then
  echo "demo-web: cannot write WEB_ROOT=\"$root\"; give the container a writable /tmp (a tmpfs, e.g. --tmpfs /tmp)" >&2
  exit 1
fi

cat >"$root/index.html" <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>$(html "$name") $(html "$version")</title></head>
<body>
<h1>$(html "$name")</h1>
<p>version <strong id="version">$(html "$version")</strong></p>
<p>served by <strong id="hostname">$(html "$host")</strong></p>
<p>a Shoal demo app: busybox httpd, read-only root filesystem, no capabilities, uid $(id -u)</p>
</body>
</html>
HTML
printf '{"name":"%s","version":"%s","hostname":"%s"}\n' "$(json "$name")" "$(json "$version")" "$(json "$host")" >"$root/info.json"
echo ok >"$root/healthz"

httpd -f -v -p "$port" -h "$root" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; exit 0' TERM INT
echo "demo-web $version listening on :$port as uid $(id -u) on $host"
# A signal makes `wait` return 143; "|| status=$?" keeps set -e from exiting before the trap runs.
status=0
wait "$pid" || status=$?
exit "$status"
