#!/usr/bin/env bash
# Build every plugin crate into a component:
#   plugins/*, examples/plugins/*  -> target/plugins/<name>.wasm
#   tests/plugins/*                -> target/test-plugins/<name>.wasm
# Each crate is a cdylib for wasm32-unknown-unknown that imports no WASI: the WIT imports
# are the whole sandbox, and a module that imports WASI is refused here.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
[ -f target/wasm-toolchain.env ] || scripts/setup-wasm-toolchain.sh
# shellcheck disable=SC1091
source target/wasm-toolchain.env
wasm_dir="${ROOST_WASM_TARGET_DIR:-$here/target/wasm}"

crates=()
declare -A out_dir
for manifest in plugins/*/Cargo.toml examples/plugins/*/Cargo.toml tests/plugins/*/Cargo.toml; do
  [ -f "$manifest" ] || continue
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)"
  crates+=("$name")
  case "$manifest" in
    tests/*) out_dir[$name]=target/test-plugins ;;
    *) out_dir[$name]=target/plugins ;;
  esac
done
[ ${#crates[@]} -gt 0 ] || { echo "no plugin crates found" >&2; exit 1; }

args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
unset RUSTC_WRAPPER
cargo build --profile plugin --target wasm32-unknown-unknown --target-dir "$wasm_dir" "${args[@]}"

mkdir -p target/plugins target/test-plugins
for c in "${crates[@]}"; do
  core="$wasm_dir/wasm32-unknown-unknown/plugin/${c//-/_}.wasm"
  out="${out_dir[$c]}/$c.wasm"
  if "$WASM_TOOLS" print "$core" | grep -q '(import "wasi'; then
    echo "error: $c imports WASI; plugins must build for wasm32-unknown-unknown without it" >&2
    exit 1
  fi
  "$WASM_TOOLS" component new "$core" -o "$out.tmp"
  "$WASM_TOOLS" validate --features component-model "$out.tmp"
  mv "$out.tmp" "$out"
  printf '%-28s %8d bytes\n' "$out" "$(wc -c < "$out")"
done
