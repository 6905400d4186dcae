#!/usr/bin/env bash
# Static analysis of the Shoal contracts with Slither.
#
# Creates (once) a virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/shoal/venv with a pinned
# slither-analyzer from PyPI, compiles with Hardhat (offline solc from npm), and runs Slither on
# Hardhat's build-info without letting crytic-compile compile or download anything.
#
# Exit status: 0 when no finding of medium severity or higher is left; non-zero otherwise.
# Accepted findings are silenced at the code with `// slither-disable-next-line <detector>` and a
# justification comment, and listed in docs/contracts.md.
set -euo pipefail

SLITHER_VERSION="0.11.3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/shoal/venv"
REPORT_DIR="${SHOAL_ANALYZE_OUT:-$ROOT/cache/slither}"

if [[ ! -x "$VENV/bin/slither" ]] || ! "$VENV/bin/slither" --version 2>/dev/null | grep -qx "$SLITHER_VERSION"; then
  echo "analyze: installing slither-analyzer==$SLITHER_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "slither-analyzer==$SLITHER_VERSION"
fi

cd "$ROOT"
# --force: one build-info holding every current source (incremental builds leave older ones behind).
npx hardhat compile --force --quiet

mkdir -p "$REPORT_DIR"
# Slither refuses to overwrite its JSON output.
rm -f "$REPORT_DIR/all.json" "$REPORT_DIR/medium-high.json"
# Hardhat keeps build-info files of sources that no longer exist; crytic-compile would choke on them.
# Hand Slither only the build-info files that the current contracts' artifacts point to.
BUILD="$REPORT_DIR/artifacts"
rm -rf "$BUILD" && mkdir -p "$BUILD/build-info"
python3 - "$ROOT/artifacts" "$BUILD/build-info" <<'PY'
import json, pathlib, shutil, sys
artifacts, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
used = set()
for dbg in (artifacts / "contracts").rglob("*.dbg.json"):
    used.add((dbg.parent / json.loads(dbg.read_text())["buildInfo"]).resolve())
for path in used:
    shutil.copy(path, out / path.name)
PY
common=(
  --compile-force-framework hardhat
  --hardhat-ignore-compile
  --hardhat-artifacts-directory "$BUILD"
  --filter-paths "node_modules|contracts/mocks"
  --exclude-dependencies
)

# Human-readable summary of every finding (all severities), for the log.
"$VENV/bin/slither" . "${common[@]}" --json "$REPORT_DIR/all.json" >"$REPORT_DIR/all.txt" 2>&1 || true

# Gate: medium and high only.
set +e
"$VENV/bin/slither" . "${common[@]}" --exclude-informational --exclude-low --json "$REPORT_DIR/medium-high.json" \
  >"$REPORT_DIR/medium-high.txt" 2>&1
status=$?
set -e

set +e
python3 - "$REPORT_DIR/all.json" "$REPORT_DIR/medium-high.json" <<'PY'
import json, sys, collections
def counts(path):
    try:
        data = json.load(open(path))
    except Exception as exc:  # noqa: BLE001 - report any unreadable output plainly
        print(f"analyze: cannot read {path}: {exc}", file=sys.stderr)
        sys.exit(2)
    if not data.get("success", False):
        print(f"analyze: slither failed: {data.get('error')}", file=sys.stderr)
        sys.exit(2)
    dets = (data.get("results") or {}).get("detectors", [])
    return dets, collections.Counter(d["impact"] for d in dets)
all_dets, all_counts = counts(sys.argv[1])
gate_dets, gate_counts = counts(sys.argv[2])
order = ["High", "Medium", "Low", "Informational", "Optimization"]
print("analyze: findings by impact (after inline justifications): " +
      ", ".join(f"{k}={all_counts.get(k, 0)}" for k in order))
for d in gate_dets:
    print(f"  [{d['impact']}] {d['check']}: {d['description'].strip().splitlines()[0]}")
sys.exit(1 if gate_dets else 0)
PY
py_status=$?
set -e
if [[ $py_status -ne 0 || $status -ne 0 ]]; then
  echo "analyze: medium or high findings left (see $REPORT_DIR/medium-high.txt)" >&2
  exit 1
fi
echo "analyze: no medium or high findings"
