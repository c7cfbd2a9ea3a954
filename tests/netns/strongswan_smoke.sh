#!/usr/bin/env bash
# strongswan_smoke.sh - self-check of tests/netns/strongswan.sh (run as root).
#
# Two namespaces joined by a veth:  client 192.0.2.2  <->  gateway 192.0.2.1
# (sw_gateway_start puts 10.200.0.1/32, inside its local traffic selector, on lo).
#   (a) ike-scan --ikev2 from the client namespace gets a valid answer
#   (b) a strongSwan client establishes IKE + CHILD SA with the gateway
#   (c) sw_half_open: 0 with the client up, 1 after one ike-scan handshake
#   (d) ping through the kernel-libipsec tunnel (skipped if ping is missing)
#   (e) stop: no charon left, no mounts leaked into the root namespace
#   (f) a gateway without pool and a client without inner address (CHILD_SA
#       10.200.0.0/16 === 192.0.2.2/32, covers the IKE peer itself): IKE + CHILD
#       SA and ping through the tunnel
# Exit 0 = pass, 1 = fail, 77 = prerequisites missing (skip).
# SW_SMOKE_KEEP=1 keeps the work directory (always kept on failure).

# shellcheck disable=SC2015  # ok() never fails
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=strongswan.sh
source "$HERE/strongswan.sh"

skip() { echo "SKIP: $*"; exit 77; }
((EUID == 0)) || skip "must run as root"
for t in ip unshare nsenter ike-scan "$SW_CHARON" "$SW_SWANCTL_BIN"; do
  command -v "$t" >/dev/null || skip "$t not found"
done
_sw_plugins >/dev/null || skip "strongSwan plugins missing"

NS_GW=swg$$
NS_CL=swc$$
VETH=swv$$
GW=192.0.2.1
CL=192.0.2.2
TMP=$(mktemp -d /tmp/sw-smoke.XXXXXX)
GWD=$TMP/gw
CLD=$TMP/cl
FAILS=0
T0=$(date +%s%N)

ms() { echo $((($(date +%s%N) - T0) / 1000000)); }
step() { printf '[%6d ms] %s\n' "$(ms)" "$*"; }
ok() { printf '[%6d ms] ok   %s\n' "$(ms)" "$*"; }
bad() { printf '[%6d ms] FAIL %s\n' "$(ms)" "$*"; FAILS=$((FAILS + 1)); }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  sw_client_stop "$NS_CL" "$CLD" 2>/dev/null
  sw_gateway_stop "$NS_GW" "$GWD" 2>/dev/null
  ip netns del "$NS_CL" 2>/dev/null
  ip netns del "$NS_GW" 2>/dev/null
  if ((rc != 0 || FAILS != 0)) || [[ ${SW_SMOKE_KEEP:-0} == 1 ]]; then
    echo "work directory kept: $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "namespaces $NS_GW ($GW) <-> $NS_CL ($CL)"
ip netns add "$NS_GW" && ip netns add "$NS_CL" &&
  ip link add "${VETH}g" netns "$NS_GW" type veth peer name "${VETH}c" netns "$NS_CL" &&
  ip -n "$NS_GW" addr add "$GW/24" dev "${VETH}g" &&
  ip -n "$NS_CL" addr add "$CL/24" dev "${VETH}c" &&
  ip -n "$NS_GW" link set lo up && ip -n "$NS_CL" link set lo up &&
  ip -n "$NS_GW" link set "${VETH}g" up && ip -n "$NS_CL" link set "${VETH}c" up ||
  { bad "namespace setup"; exit 1; }

step "sw_gateway_start"
if sw_gateway_start "$NS_GW" "$GWD" "$GW" --psk smoke-secret; then
  ok "gateway up (pid $(_sw_pid "$GWD"))"
else
  bad "sw_gateway_start"; exit 1
fi

step "sw_client_start + sw_client_up"
if sw_client_start "$NS_CL" "$CLD" "$CL" "$GW" --psk smoke-secret && sw_client_up "$NS_CL" "$CLD"; then
  ok "client established IKE + CHILD SA, inner address $(sw_client_vip "$NS_CL" "$CLD")"
  sw_swanctl "$NS_CL" "$CLD" --list-sas | sed 's/^/    /'
else
  bad "client IKE/CHILD SA"
fi

echo "    swanctl --stats on the gateway:"
sw_swanctl "$NS_GW" "$GWD" --stats | sed 's/^/    /'
n=$(sw_half_open "$NS_GW" "$GWD")
[[ $n == 0 ]] && ok "half-open = 0 with the client up" || bad "half-open = '$n' with the client up (want 0)"
n=$(sw_ike_sa_count "$NS_GW" "$GWD")
[[ $n == 1 ]] && ok "IKE_SAs total = 1" || bad "IKE_SAs total = '$n' (want 1)"

if command -v ping >/dev/null; then
  step "ping 10.200.0.1 through the tunnel"
  if ip netns exec "$NS_CL" ping -c 3 -i 0.2 -W 1 -q 10.200.0.1 | sed 's/^/    /' &&
      sw_swanctl "$NS_CL" "$CLD" --list-sas | grep -qE 'out .* [1-9][0-9]* packets'; then
    ok "tunnel ping (kernel-libipsec, ESP in UDP 4500)"
  else
    bad "tunnel ping"
  fi
else
  step "SKIP tunnel ping: no ping binary (apt-get install iputils-ping)"
fi

# ike-scan binds source port 500 by default, which the client charon holds: --sport=0.
step "ike-scan --ikev2 (default: KE group 2; offers AES/3DES/DES, SHA1/MD5, groups 2,5,14)"
out=$(ip netns exec "$NS_CL" ike-scan --ikev2 --sport=0 --retry=2 "$GW" 2>&1)
printf '    %s\n' "${out//$'\n'/$'\n'    }"
if grep -qE "^${GW//./\\.}[[:space:]]+(IKEv2 SA_INIT Handshake returned|Notify message 17 \(INVALID_KE_PAYLOAD\))" <<<"$out"; then
  ok "ike-scan got a valid IKEv2 answer"
else
  bad "ike-scan answer"
fi
n=$(sw_half_open "$NS_GW" "$GWD")
[[ $n == 0 ]] && ok "half-open = 0 after INVALID_KE_PAYLOAD (responder keeps no state)" ||
  bad "half-open = '$n' after INVALID_KE_PAYLOAD (want 0)"

step "ike-scan --ikev2 --dhgroup=14 (KE group the gateway accepts)"
out=$(ip netns exec "$NS_CL" ike-scan --ikev2 --dhgroup=14 --sport=0 --retry=2 "$GW" 2>&1)
printf '    %s\n' "${out//$'\n'/$'\n'    }"
if grep -qE "^${GW//./\\.}[[:space:]]+IKEv2 SA_INIT Handshake returned" <<<"$out"; then
  ok "ike-scan handshake"
else
  bad "ike-scan handshake"
fi
n=$(sw_half_open "$NS_GW" "$GWD")
[[ $n == 1 ]] && ok "half-open = 1 after one handshake probe" || bad "half-open = '$n' after one probe (want 1)"

step "sw_client_down"
if sw_client_down "$NS_CL" "$CLD"; then
  left=$(sw_swanctl "$NS_CL" "$CLD" --list-sas | grep -c ESTABLISHED)
  [[ $left == 0 ]] && ok "client SA terminated" || bad "client still has $left SAs"
else
  bad "sw_client_down"
fi

step "stop both charons"
gpid=$(_sw_pid "$GWD") cpid=$(_sw_pid "$CLD")
sw_client_stop "$NS_CL" "$CLD" || bad "sw_client_stop"
sw_gateway_stop "$NS_GW" "$GWD" || bad "sw_gateway_stop"
for p in $gpid $cpid; do
  [[ -d /proc/$p ]] && bad "process $p still exists"
done
if grep -rlsF "STRONGSWAN_CONF=$TMP/" /proc/[0-9]*/environ >/dev/null 2>&1; then
  bad "a charon of this test is still running"
fi
if grep -qF "$TMP" /proc/self/mounts; then
  bad "mount leaked into the root mount namespace"; grep -F "$TMP" /proc/self/mounts
fi
ip -n "$NS_GW" link show ipsec0 >/dev/null 2>&1 && bad "ipsec0 still exists in $NS_GW"
sw_running "$GWD" && bad "sw_running still true"
ip -n "$NS_GW" -4 addr show dev lo | grep -q 10.200.0.1 && bad "10.200.0.1 left on lo in $NS_GW"
((FAILS == 0)) && ok "stopped, nothing left"

step "(f) gateway --pool none, client --no-vip-request"
if sw_gateway_start "$NS_GW" "$GWD" "$GW" --pool none &&
    sw_client_start "$NS_CL" "$CLD" "$CL" "$GW" --no-vip-request &&
    sw_client_up "$NS_CL" "$CLD"; then
  ok "client established IKE + CHILD SA without inner address"
  sw_swanctl "$NS_CL" "$CLD" --list-sas | grep -E '^    (local|remote) ' | sed 's/^/    /'
  if command -v ping >/dev/null; then
    if ip netns exec "$NS_CL" ping -c 2 -i 0.2 -W 1 -q 10.200.0.1 >/dev/null &&
        sw_swanctl "$NS_CL" "$CLD" --list-sas | grep -qE 'out .* [1-9][0-9]* packets'; then
      ok "tunnel ping from $CL"
    else
      bad "tunnel ping from $CL"
    fi
  fi
else
  bad "no-vip-request client"
fi
sw_client_stop "$NS_CL" "$CLD" || bad "sw_client_stop"
sw_gateway_stop "$NS_GW" "$GWD" || bad "sw_gateway_stop"
sw_running "$CLD" || sw_running "$GWD" && bad "charon still running"

if ((FAILS)); then
  echo "---- gateway log tail"; tail -n 30 "$GWD/charon.log"
  echo "---- client log tail"; tail -n 30 "$CLD/charon.log"
  echo "strongswan_smoke: $FAILS check(s) FAILED in $(ms) ms"
  exit 1
fi
echo "strongswan_smoke: PASS in $(ms) ms"
