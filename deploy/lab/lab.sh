#!/usr/bin/env bash
# deploy/lab/lab.sh - ikelb balancing real strongSwan IKEv2 tunnels, in network namespaces.
#
#   lab.sh up        (re)build the lab: tears down a previous one first, then starts the
#                    namespaces, three strongSwan gateways, ikelbd and five strongSwan clients,
#                    brings every client's tunnel up and prints the report
#   lab.sh report    the report again: per client the gateway it landed on as that gateway sees
#                    it, `ikelbctl backends`, an excerpt of /metrics
#   lab.sh status    what runs (namespaces, daemons, SAs) in a few lines (a gateway's one
#                    half-open IKE_SA for 30 s after ikelbd starts: its first health probe)
#   lab.sh down      remove everything: ikelbd (XDP detached, pins removed), charons,
#                    namespaces, the bpffs mount, the state directory /tmp/ikelb-lab
#   lab.sh ctl ARGS...            ikelbctl against the lab's agent (e.g. `ctl backends`)
#   lab.sh swanctl NODE ARGS...   swanctl against a node's charon (gw1..gw3, c1..c5)
#   lab.sh metrics                the agent's full /metrics
#
# Topology (namespaces are prefixed "ikl-"; interface names are local to a namespace):
#
#   ikl-c1  198.51.100.11 ─┐
#   ikl-c2  198.51.100.12 ─┤                                      ikl-lb: ikelbd, XDP on uplink
#   ikl-c3  198.51.100.13 ─┼─ br0 ─ ikl-inet ─ 192.0.2.1 ─────── 192.0.2.2 uplink  and gw1..gw3
#   ikl-c4  198.51.100.14 ─┤  198.51.100.1   routes the VIP            gw1 10.0.1.1 ── 10.0.1.2 ikl-gw1
#   ikl-nat 198.51.100.20 ─┘  203.0.113.10 to 192.0.2.2               gw2 10.0.2.1 ── 10.0.2.2 ikl-gw2
#     └ 192.168.0.1 ── 192.168.0.2 ikl-c5                              gw3 10.0.3.1 ── 10.0.3.2 ikl-gw3
#       (nftables masquerade: c5's IKE uses NAT-T)
#
# Gateways: strongSwan charon responders (one per namespace, private /run, kernel-libipsec for
# the CHILD_SAs), default route via ikelb, so replies come back through it. Each hands out inner
# addresses from its own pool (gw<i>: 10.201.<i>.0/24) and has 10.200.0.1 inside its traffic
# selector 10.200.0.0/16. Clients: charon initiators (PSK) to the VIP 203.0.113.10.
# The agent runs from deploy/lab/ikelb.json (stateless IKE probes every 200 ms, metrics on
# 127.0.0.1:9712 inside ikl-lb, admin socket /tmp/ikelb-lab/ikelb.sock); the binaries come from
# build/ (IKELB_BUILD overrides). Needs root, and the packages of deploy/packages.txt.
# Logs: /tmp/ikelb-lab/ikelbd.log and /tmp/ikelb-lab/<node>/charon.log; the gateways log at
# level 0 (one line per health probe, ~20 MB a day each); LAB_GW_LOGLEVEL=1 logs every packet.

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${IKELB_BUILD:-$REPO/build}
IKELBD=$BUILD/lb/ikelbd
IKELBCTL=$BUILD/lb/ikelbctl
NETNS_TOOL=$BUILD/tests/ikelb_netns_tool
CONFIG=$HERE/ikelb.json
STATE=/tmp/ikelb-lab # also in ikelb.json (bpffs, admin socket)
P=ikl
VIP=203.0.113.10
PSK=ikelb-lab-psk-0123456789
GATEWAYS=(gw1 gw2 gw3)
CLIENTS=(c1 c2 c3 c4 c5)
declare -A ADDR=([c1]=198.51.100.11 [c2]=198.51.100.12 [c3]=198.51.100.13 [c4]=198.51.100.14
  [c5]=192.168.0.2 [nat]=198.51.100.20 [gw1]=10.0.1.2 [gw2]=10.0.2.2 [gw3]=10.0.3.2)
# shellcheck source-path=SCRIPTDIR/../..
# shellcheck source=tests/netns/strongswan.sh
source "$REPO/tests/netns/strongswan.sh"

say() { printf '%s\n' "$*"; }
die() { printf 'lab.sh: %s\n' "$*" >&2; exit 1; }
ns() { echo "$P-$1"; }
# quiet command: prints its output only if it fails
q() {
  local out
  out=$("$@" 2>&1) && return 0
  printf 'lab.sh: "%s" failed: %s\n' "$*" "$out" >&2
  return 1
}
# MACs 02:1b:1a:00:<link>:<side>: fixed, so the neighbours can be permanent
mac() { printf '02:1b:1a:00:%02x:%02x' "$1" "$2"; }

need() {
  ((EUID == 0)) || die "run as root (namespaces, XDP, bpffs)"
  local f
  for f in "$IKELBD" "$IKELBCTL" "$NETNS_TOOL"; do
    [[ -x $f ]] || die "$f not found: build first (cmake -S $REPO -B $BUILD && cmake --build $BUILD)"
  done
  for f in ip nft ethtool unshare nsenter ping mount; do
    command -v "$f" >/dev/null || die "$f not found (install the packages of deploy/packages.txt)"
  done
  [[ -x $SW_CHARON && -x $SW_SWANCTL_BIN ]] ||
    die "strongSwan not found (strongswan-charon, strongswan-swanctl, libcharon-extra-plugins)"
  _sw_plugins >/dev/null || exit 1
}

# ---- topology ----

add_ns() {
  q ip netns add "$(ns "$1")" || return 1
  q ip -n "$(ns "$1")" link set lo up
  ip netns exec "$(ns "$1")" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# veth IF_A in A <-> IF_B in B, both up; LINK numbers the MACs (a: side 1, b: side 2)
add_veth() {
  local a=$1 ifa=$2 b=$3 ifb=$4 link=$5
  q ip -n "$(ns "$a")" link add "$ifa" address "$(mac "$link" 1)" type veth \
    peer name "$ifb" address "$(mac "$link" 2)" netns "$(ns "$b")" &&
    q ip -n "$(ns "$a")" link set "$ifa" up && q ip -n "$(ns "$b")" link set "$ifb" up
}

# TX checksum offload off: a partial checksum does not survive an XDP redirect.
tx_off() { q ip netns exec "$(ns "$1")" ethtool -K "$2" tx off; }

topology() {
  local n i c link
  for n in inet lb nat "${GATEWAYS[@]}" "${CLIENTS[@]}"; do add_ns "$n" || return 1; done
  for n in inet lb nat; do
    ip netns exec "$(ns "$n")" sysctl -qw net.ipv4.ip_forward=1 || return 1
  done

  # internet router: a bridge for the client hosts, a link to ikelb; the VIP is routed to ikelb.
  # A fixed bridge MAC: by default a bridge takes its lowest port's MAC and changes it when a port
  # is added, and hosts that still use the old one are cut off until their ARP entry is renewed.
  q ip -n "$(ns inet)" link add br0 address "$(mac 20 1)" type bridge &&
    q ip -n "$(ns inet)" addr add 198.51.100.1/24 dev br0 &&
    q ip -n "$(ns inet)" link set br0 up || return 1
  add_veth inet lb0 lb uplink 1 || return 1
  q ip -n "$(ns inet)" addr add 192.0.2.1/24 dev lb0 &&
    q ip -n "$(ns lb)" addr add 192.0.2.2/24 dev uplink &&
    q ip -n "$(ns inet)" route add "$VIP/32" via 192.0.2.2 &&
    q ip -n "$(ns lb)" route add 198.51.100.0/24 via 192.0.2.1 || return 1
  q ip -n "$(ns inet)" neigh replace 192.0.2.2 lladdr "$(mac 1 2)" nud permanent dev lb0 &&
    q ip -n "$(ns lb)" neigh replace 192.0.2.1 lladdr "$(mac 1 1)" nud permanent dev uplink || return 1
  # lb0 is the peer of an XDP redirect target: it needs an XDP program itself
  q ip netns exec "$(ns inet)" "$NETNS_TOOL" xdp-pass lb0 || return 1

  # gateways: one link each to ikelb, default route back through it
  for i in 1 2 3; do
    link=$((10 + i))
    add_veth lb "gw$i" "gw$i" eth0 "$link" || return 1
    q ip -n "$(ns lb)" addr add "10.0.$i.1/24" dev "gw$i" &&
      q ip -n "$(ns "gw$i")" addr add "10.0.$i.2/24" dev eth0 &&
      q ip -n "$(ns "gw$i")" route add default via "10.0.$i.1" &&
      q ip -n "$(ns lb)" neigh replace "10.0.$i.2" lladdr "$(mac "$link" 2)" nud permanent dev "gw$i" &&
      q ip -n "$(ns "gw$i")" neigh replace "10.0.$i.1" lladdr "$(mac "$link" 1)" nud permanent dev eth0 &&
      q ip netns exec "$(ns "gw$i")" "$NETNS_TOOL" xdp-pass eth0 || return 1
  done

  # direct clients and the NAT router on the bridge
  link=20
  for c in c1 c2 c3 c4 nat; do
    link=$((link + 1))
    add_veth inet "p-$c" "$c" wan "$link" || return 1
    q ip -n "$(ns inet)" link set "p-$c" master br0 &&
      q ip -n "$(ns "$c")" addr add "${ADDR[$c]}/24" dev wan &&
      q ip -n "$(ns "$c")" route add default via 198.51.100.1 && tx_off "$c" wan || return 1
  done
  # the NATed client
  add_veth nat lan c5 wan 30 || return 1
  q ip -n "$(ns nat)" addr add 192.168.0.1/24 dev lan &&
    q ip -n "$(ns c5)" addr add 192.168.0.2/24 dev wan &&
    q ip -n "$(ns c5)" route add default via 192.168.0.1 && tx_off c5 wan && tx_off nat lan || return 1
  # "random": the gateway sees c5 behind a translated port, the way most home routers do it
  ip netns exec "$(ns nat)" nft -f - <<'EOF' || { say "lab.sh: nft failed" >&2; return 1; }
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random
  }
}
EOF
}

# ---- daemons ----

gw_dir() { echo "$STATE/$1"; }

start_gateways() {
  local i
  for i in 1 2 3; do
    # Log level 0 by default: at 1, charon logs every health probe (5 lines, 5 times a second)
    SW_LOGLEVEL=${LAB_GW_LOGLEVEL:-0} sw_gateway_start "$(ns "gw$i")" "$(gw_dir "gw$i")" "${ADDR[gw$i]}" --psk "$PSK" \
      --pool "10.201.$i.0/24" || return 1
  done
}

agent_pid() {
  local pid
  [[ -r $STATE/ikelbd.pid ]] || return 1
  read -r pid <"$STATE/ikelbd.pid" || return 1
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--config $CONFIG" || return 1
  echo "$pid"
}

ctl() { "$IKELBCTL" --socket "$STATE/ikelb.sock" "$@"; }

start_agent() {
  local i
  mkdir -p "$STATE/bpf" || return 1
  if ! mountpoint -q "$STATE/bpf"; then
    q mount -t bpf bpf "$STATE/bpf" || return 1
  fi
  ip netns exec "$(ns lb)" setsid "$IKELBD" --config "$CONFIG" </dev/null >>"$STATE/ikelbd.log" 2>&1 &
  echo $! >"$STATE/ikelbd.pid"
  disown 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    ctl status >/dev/null 2>&1 && break
    agent_pid >/dev/null || { say "lab.sh: ikelbd exited:" >&2; tail -n 20 "$STATE/ikelbd.log" >&2; return 1; }
    sleep 0.1
  done
  ((i < 100)) || { say "lab.sh: ikelbd did not answer within 10 s" >&2; return 1; }
  # the probes bring the gateways up (rise 2 x 200 ms)
  for ((i = 0; i < 50; i++)); do
    [[ $(ctl --json backends | grep -c '"state": "active"') == 3 ]] && return 0
    sleep 0.1
  done
  say "lab.sh: the gateways did not all become active:" >&2
  ctl backends >&2
  return 1
}

start_clients() {
  local c pids=() rc=0 pid
  for c in "${CLIENTS[@]}"; do
    sw_client_start "$(ns "$c")" "$(gw_dir "$c")" "${ADDR[$c]}" "$VIP" --psk "$PSK" || return 1
  done
  for c in "${CLIENTS[@]}"; do
    sw_client_up "$(ns "$c")" "$(gw_dir "$c")" 20 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

# ---- report ----

# "ADDRESS[PORT] INNER" of the IKE_SA whose remote (the client, as the gateway sees it) is ADDRESS
# on gateway GW, or nothing
seen_by() {
  local gw=$1 addr=$2
  sw_swanctl "$(ns "$gw")" "$(gw_dir "$gw")" --list-sas 2>/dev/null |
    awk -v a="$addr" '/^  remote / { split($0, f, " @ "); split(f[2], g, " ");
      if (index(g[1], a "[") == 1) { gsub(/[][]/, "", g[2]); print g[1], (g[2] == "" ? "-" : g[2]); exit } }'
}

# GET /metrics from inside ikl-lb (bash's /dev/tcp: no HTTP client needed)
metrics() {
  ip netns exec "$(ns lb)" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9712 &&
    printf "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' |
    sed '1,/^\r\{0,1\}$/d'
}

report() {
  local c g gw seen public where inner ping row
  agent_pid >/dev/null || die "no lab running (deploy/lab/lab.sh up)"
  say "ikelb lab: VIP $VIP -> gw1 10.0.1.2, gw2 10.0.2.2, gw3 10.0.3.2 (namespaces $P-*)"
  say ""
  printf '%-7s %-15s %-8s %-22s %-12s %s\n' CLIENT ADDRESS GATEWAY "GATEWAY SEES CLIENT AT" "INNER ADDR" \
    "PING 10.200.0.1 THROUGH THE TUNNEL"
  for c in "${CLIENTS[@]}"; do
    public=${ADDR[$c]} where=${ADDR[$c]}
    [[ $c == c5 ]] && public=${ADDR[nat]} where="${ADDR[$c]}*"
    gw="-" seen="(no IKE_SA)" inner="-" ping="-"
    for g in "${GATEWAYS[@]}"; do
      row=$(seen_by "$g" "$public")
      [[ -n $row ]] || continue
      if [[ $gw == - ]]; then gw=$g seen=${row% *} inner=${row#* }; else gw+="+$g(!)"; fi
    done
    if [[ $gw != - ]]; then
      ping=$(ip netns exec "$(ns "$c")" ping -c 3 -i 0.2 -W 1 -q 10.200.0.1 2>&1 |
        sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\2 of \1 replies/p')
    fi
    printf '%-7s %-15s %-8s %-22s %-12s %s\n' "$c" "$where" "$gw" "$seen" "$inner" "${ping:-FAILED}"
  done
  say "* $P-c5 is behind $P-nat (nftables masquerade to ${ADDR[nat]}, random ports): NAT-T"
  say ""
  say "\$ ikelbctl backends"
  ctl backends
  say ""
  say "\$ $0 metrics   (GET 127.0.0.1:9712/metrics in $P-lb; excerpt, non-zero samples)"
  metrics | grep -E '^ikelb_(virtual_server_healthy_backends|backend_pinned_clients|backend_packets_total|probe_results_total|affinity_entries|failovers_total)' |
    grep -v ' 0$' | sed 's/^/  /'
  metrics | grep -E '^ikelb_datapath_packets_total' | grep -v ' 0$' | sed 's/^/  /'
  say ""
  say "explore:  ip netns exec $P-c1 ping 10.200.0.1          (through c1's tunnel)"
  say "          $0 ctl backends | ctl drain gw2 | ctl status"
  say "          $0 swanctl gw1 --list-sas                 (any of gw1..gw3, c1..c5)"
  say "          $0 metrics;  logs under $STATE (ikelbd.log, <node>/charon.log)"
  say "stop:     $0 down"
}

status() {
  local n c pid
  n=$(ip netns list | grep -c "^$P-")
  say "namespaces: $n ($P-*)"
  if pid=$(agent_pid); then say "ikelbd: running (pid $pid)"; else say "ikelbd: not running"; fi
  for c in "${GATEWAYS[@]}" "${CLIENTS[@]}"; do
    if sw_running "$(gw_dir "$c")"; then
      say "$c: charon running, IKE_SAs: $(sw_ike_sa_count "$(ns "$c")" "$(gw_dir "$c")" 2>/dev/null) total," \
        "$(sw_half_open "$(ns "$c")" "$(gw_dir "$c")" 2>/dev/null) half-open"
    elif [[ -d $(gw_dir "$c") ]]; then
      say "$c: charon NOT running"
    fi
  done
}

# ---- teardown ----

down() {
  local pid d i n
  # the agent: teardown while it runs detaches XDP and removes the pins; else the offline teardown
  if pid=$(agent_pid); then
    ctl teardown >/dev/null 2>&1
    for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null
  fi
  if [[ -d $STATE/bpf/ikelb ]] && ip netns exec "$(ns lb)" true 2>/dev/null; then
    ip netns exec "$(ns lb)" "$IKELBD" --config "$CONFIG" --teardown >/dev/null 2>&1
  fi
  for d in "$STATE"/*/; do
    [[ -f $d/strongswan.conf ]] || continue
    d=${d%/}
    sw_gateway_stop "$(ns "${d##*/}")" "$d" 2>/dev/null
  done
  # anything else started from the lab's state directory (a charon whose pid file is gone)
  grep -lsF "STRONGSWAN_CONF=$STATE/" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 |
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done
  for n in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
    ip netns del "$n" 2>/dev/null || say "lab.sh: cannot delete namespace $n" >&2
  done
  if mountpoint -q "$STATE/bpf" 2>/dev/null; then
    umount "$STATE/bpf" || umount -l "$STATE/bpf"
  fi
  rm -rf "$STATE"
}

up() {
  local t0=$SECONDS
  need
  down
  mkdir -p "$STATE" || die "cannot create $STATE"
  say "lab.sh: namespaces and links"
  topology || { down; die "topology failed"; }
  say "lab.sh: strongSwan gateways gw1 gw2 gw3"
  start_gateways || { down; die "a gateway did not start"; }
  say "lab.sh: ikelbd ($CONFIG)"
  start_agent || { down; die "ikelbd did not start (log: see above)"; }
  say "lab.sh: strongSwan clients c1..c5 -> $VIP"
  if ! start_clients; then
    say "lab.sh: not every client connected; the lab stays up for inspection ($0 down removes it)" >&2
  fi
  say "lab.sh: up in $((SECONDS - t0)) s"
  say ""
  report
}

case ${1:-} in
  up) up ;;
  report) report ;;
  status) status ;;
  down) ((EUID == 0)) || die "run as root"; down; say "lab.sh: down" ;;
  ctl) shift; ctl "$@" ;;
  swanctl)
    [[ $# -ge 2 ]] || die "usage: $0 swanctl NODE ARGS..."
    sw_swanctl "$(ns "$2")" "$(gw_dir "$2")" "${@:3}" ;;
  metrics) metrics ;;
  *) say "usage: $0 up|report|status|down|ctl ARGS...|swanctl NODE ARGS...|metrics" >&2; exit 2 ;;
esac
