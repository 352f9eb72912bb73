#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests: start the local
# cluster if it is stopped, install one (Debian) if there is none, and allow password-less
# loopback connections for the test role. Then drop test databases left by earlier runs.
set -euo pipefail

url="${ROOST_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
say() { printf 'postgres: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }

start_cluster() {
  local v
  v="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  [ -n "$v" ] || return 1
  say "starting cluster $v/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  for _ in $(seq 1 30); do ready && return 0; sleep 1; done
  return 1
}

if ! ready; then
  if ! start_cluster; then
    say "installing postgresql (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
      || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }
    v="$(ls /etc/postgresql | sort -V | tail -n1)"
    hba="/etc/postgresql/$v/main/pg_hba.conf"
    if ! grep -q 'roost-tests' "$hba"; then
      # Tests connect over loopback without a password, as on the machines this project uses.
      as_root sed -i '1i host all all 127.0.0.1/32 trust # roost-tests\nhost all all ::1/128 trust # roost-tests' "$hba"
    fi
    start_cluster || { say "PostgreSQL did not start"; exit 1; }
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main reload || true
  fi
fi

if ! psql "$url" -Atqc 'select 1' >/dev/null; then
  say "cannot connect to $url (set ROOST_TEST_PG to a superuser URL)"; exit 1
fi
for db in $(psql "$url" -Atqc "select datname from pg_database where datname like 'roost_t_%'"); do
  psql "$url" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
done
say "ready at $url"
