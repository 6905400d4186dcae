#!/usr/bin/env bash
# Type check, ESLint and Prettier for TypeScript, solhint for Solidity. `--fix` rewrites in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${1:-} == --fix ]]; then
  npx prettier --write --log-level warn .
  npx eslint --fix .
  exit 0
fi
# Two commands, not an && chain: set -e does not stop at a failure inside a chain.
echo "tsc --noEmit";  npx tsc --noEmit -p .
npx tsc --noEmit -p console/src
echo "eslint";        npx eslint --max-warnings 0 .
echo "prettier";      npx prettier --check --log-level warn .
echo "solhint";       npx solhint --max-warnings 0 'contracts/**/*.sol'
echo "lint: clean"
