#!/bin/bash
# The example configs of deploy/ha/ are accepted by the daemons that read them (bird2, FRR's
# vtysh, keepalived), and each check fails on a config with one bad keyword (negative control).
# Usage: ha_configs.sh DEPLOY_HA_DIR IKELBCTL
set -u
dir=$1 ikelbctl=$2
work=$(mktemp -d /tmp/ikelb-ha-configs-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
fail=0

check() {  # NAME GOOD_FILE BAD_FILE COMMAND... (the file is the last argument)
  local name=$1 good=$2 bad=$3
  shift 3
  if out=$("$@" "$good" 2>&1); then echo "ok: $name accepts $(basename "$good")"
  else echo "FAIL: $name rejects $good: $out"; fail=1; fi
  if out=$("$@" "$bad" 2>&1); then echo "FAIL: $name accepts a config with a bad keyword"; fail=1
  else echo "ok: $name rejects the bad copy: $(echo "$out" | tail -n 1)"; fi
}

sed 's/multiplier 3;/multiplierx 3;/' "$dir/bird.conf" > "$work/bird-bad.conf"
check "bird -p" "$dir/bird.conf" "$work/bird-bad.conf" bird -p -c

sed 's/bfd;/bfdx;/' "$dir/bird-gateway.conf" > "$work/bird-gateway-bad.conf"
check "bird -p" "$dir/bird-gateway.conf" "$work/bird-gateway-bad.conf" bird -p -c

cp "$dir/frr.conf" "$work/frr.conf"
sed 's/maximum-paths 16/maximum-pathsx 16/' "$dir/frr.conf" > "$work/frr-bad.conf"
chmod 644 "$work"/frr*.conf
check "vtysh -C" "$work/frr.conf" "$work/frr-bad.conf" vtysh -C -f

# The tracked script must exist for keepalived -t to pass: point it at the built ikelbctl.
sed "s#/usr/sbin/ikelbctl#$ikelbctl#" "$dir/keepalived.conf" > "$work/keepalived.conf"
sed 's/advert_int/advert_intx/' "$work/keepalived.conf" > "$work/keepalived-bad.conf"
check "keepalived -t" "$work/keepalived.conf" "$work/keepalived-bad.conf" keepalived -t -f
exit $fail
