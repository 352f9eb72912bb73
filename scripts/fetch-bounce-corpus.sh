#!/usr/bin/env bash
# The real-world bounce corpus the parser is checked against: the 117 samples shipped in the
# source distribution of flufl.bounce 6.0.0 (PyPI), with the addresses and temporary/permanent
# verdicts its own tests expect. Downloaded once with pip into the tool cache; the expected
# verdicts are read out of its tests/test_detectors.py into expected.json (no code of it is
# kept in this repository). Prints nothing when the cache is warm.
set -euo pipefail

cache="${ROOST_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roost}"
dir="$cache/flufl-bounce-6.0.0"
say() { printf 'bounce-corpus: %s\n' "$*" >&2; }

if [ ! -s "$dir/expected.json" ]; then
  python="$cache/venv/bin/python"
  [ -x "$python" ] || python="$(command -v python3)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  say "downloading the flufl.bounce 6.0.0 sdist"
  "$python" -m pip download -q --no-deps --no-binary :all: flufl.bounce==6.0.0 -d "$tmp"
  tar xzf "$tmp"/flufl_bounce-6.0.0.tar.gz -C "$tmp"
  src="$tmp/flufl_bounce-6.0.0/tests"
  rm -rf "$dir.new" && mkdir -p "$dir.new"
  cp -r "$src/data" "$dir.new/data"
  "$python" - "$src/test_detectors.py" "$dir.new/expected.json" <<'PY'
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
rows = None
for node in tree.body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DETECTORS" for t in node.targets):
        rows = ast.literal_eval(node.value)
if not rows:
    sys.exit("DETECTORS not found in " + sys.argv[1])
out = [
    {"detector": d, "file": f, "addresses": [a.decode() for a in addrs], "temporary": t}
    for d, f, addrs, t in rows
]
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
  rm -rf "$dir" && mv "$dir.new" "$dir"
  say "$(ls "$dir/data" | wc -l) files in $dir"
fi
# The Rust corpus test finds the samples here.
mkdir -p target
echo "ROOST_BOUNCE_CORPUS=$dir" > target/bounce-corpus.env
