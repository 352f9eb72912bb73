#!/usr/bin/env bash
# The real peers the tests drive: swaks (Debian), Postfix's smtp-source and smtp-sink
# (taken out of Debian's postfix package without installing or configuring Postfix),
# Python's smtplib, aiosmtpd (a receiving MTA that records what it gets) and dkimpy (an
# independent DKIM verifier) in a private virtualenv, dnsmasq (real DNS for MX and DMARC
# records), openssl (DKIM keys) and Chromium (report pages). Writes target/test-peers.env.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${ROOST_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roost}"
say() { printf 'test-peers: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

command -v python3 >/dev/null || apt_install python3
command -v swaks >/dev/null || { say "installing swaks"; apt_install swaks; }
# swaks needs Net::SSLeay for --tls.
perl -MNet::SSLeay -e1 2>/dev/null || { say "installing libnet-ssleay-perl"; apt_install libnet-ssleay-perl libio-socket-ssl-perl; }

command -v openssl >/dev/null || { say "installing openssl"; apt_install openssl; }
# Headless Chromium renders the report pages in the tests.
command -v chromium >/dev/null || { say "installing chromium"; apt_install chromium; }
# wrk loads the tracking endpoints in `make bench`.
command -v wrk >/dev/null || { say "installing wrk"; apt_install wrk; }
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || { say "installing dnsmasq-base"; apt_install dnsmasq-base; }
dnsmasq_bin="$(command -v dnsmasq || echo /usr/sbin/dnsmasq)"

venv="$cache/venv"
if ! "$venv/bin/python" -c 'import aiosmtpd, dkim, nacl' 2>/dev/null; then
  say "installing aiosmtpd and dkimpy into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'aiosmtpd==1.4.6' 'dkimpy==1.1.8' 'dnspython>=2' 'pynacl>=1.5'
fi

postfix_dir="$cache/postfix"
if [ ! -x "$postfix_dir/usr/sbin/smtp-source" ]; then
  say "fetching Postfix's smtp-source and smtp-sink (package extracted, not installed)"
  work="$(mktemp -d)"
  ( cd "$work" && { apt-get download postfix >/dev/null 2>&1 || { as_root apt-get update -q && apt-get download postfix; }; } )
  rm -rf "$postfix_dir"; mkdir -p "$postfix_dir"
  dpkg -x "$work"/postfix_*.deb "$postfix_dir"
  rm -rf "$work"
fi
# The Postfix tools link against libraries of their own package.
lib="$postfix_dir/usr/lib/postfix"
usage="$(LD_LIBRARY_PATH="$lib" "$postfix_dir/usr/sbin/smtp-source" 2>&1 || true)"
case "$usage" in *usage*) ;; *) say "smtp-source does not run: $usage"; exit 1 ;; esac

mkdir -p "$here/target"
{
  echo "SMTP_SOURCE=$postfix_dir/usr/sbin/smtp-source"
  echo "SMTP_SINK=$postfix_dir/usr/sbin/smtp-sink"
  echo "POSTFIX_LIB=$lib"
  echo "SWAKS=$(command -v swaks)"
  echo "PEER_PYTHON=$venv/bin/python"
  echo "DNSMASQ=$dnsmasq_bin"
  echo "CHROMIUM=$(command -v chromium)"
} > "$here/target/test-peers.env"
say "ready"
