#!/usr/bin/env bash
# A private Postfix instance for the benchmarks' comparisons:
#   scripts/bench-postfix.sh start PORT DIR             durable intake: queues (fsync'd like
#                                                        any Postfix queue), then discards
#   scripts/bench-postfix.sh start PORT DIR RELAY_PORT  fan-out: relays everything to
#                                                        [127.0.0.1]:RELAY_PORT, XVERP allowed
#   scripts/bench-postfix.sh stop DIR
# It listens on 127.0.0.1:PORT and accepts mail from 127.0.0.0/8 only.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
cmd="${1:?start|stop}"; 

if [ "$cmd" = stop ]; then
  dir="${2:?DIR}"
  as_root postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
  exit 0
fi

port="${2:?PORT}"; dir="${3:?DIR}"; relay="${4:-}"
if ! command -v postfix >/dev/null 2>&1 || [ ! -f /etc/postfix/main.cf ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix >/dev/null \
    || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix >/dev/null; }
  [ -f /etc/postfix/main.cf ] || as_root cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
fi
# The default instance must name ours before `postfix -c` accepts it.
if ! grep -q "^alternate_config_directories.*$dir/etc" /etc/postfix/main.cf; then
  as_root postconf -e "alternate_config_directories = $dir/etc"
fi
transport="discard:"
[ -z "$relay" ] || transport="smtp"
mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
chown -R root "$dir"
chown postfix "$dir/data"
cp /etc/postfix/master.cf "$dir/etc/master.cf"
# Only our SMTP listener: replace the standard smtp service line.
sed -i "s/^smtp      inet.*/127.0.0.1:$port inet n - y - - smtpd/" "$dir/etc/master.cf"
cat > "$dir/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
myhostname = bench.example.org
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = $transport
local_transport = discard:
relay_transport = $transport
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
CONF
if [ -n "$relay" ]; then
  # Postfix's defaults otherwise (20 connections to the one destination), as measured in
  # ../shared/TESTING-PEERS.md; one message may name all the list's recipients.
  cat >> "$dir/etc/main.cf" <<CONF
relayhost = [127.0.0.1]:$relay
smtpd_authorized_verp_clients = 127.0.0.0/8
smtpd_recipient_limit = 1000000
smtp_tls_security_level = none
CONF
fi
as_root postfix -c "$dir/etc" check
as_root postfix -c "$dir/etc" start >/dev/null 2>&1 || as_root postfix -c "$dir/etc" reload >/dev/null
for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then exit 0; fi
  sleep 0.2
done
echo "postfix did not start listening on $port" >&2
exit 1
