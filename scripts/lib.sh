# Shared by scripts/main.sh and scripts/test.sh: repo root, logging, and npm packages on demand.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n== [%ss] %s\n' "$SECONDS" "$*" >&2; }

# npm ci when node_modules is missing or older than package-lock.json.
ensure_npm_packages() {
  command -v node >/dev/null || { echo "Node.js >= 20.19 is required (node not found)" >&2; exit 1; }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    { echo "Node.js >= 20.19 is required (found $(node --version))" >&2; exit 1; }
  if [[ ! -f $repo/node_modules/.package-lock.json || $repo/package-lock.json -nt $repo/node_modules/.package-lock.json ]]; then
    say "installing npm packages (npm ci)"
    (cd "$repo" && npm ci --no-audit --no-fund)
  fi
}
