# shellcheck shell=bash
# strongswan.sh - run real strongSwan charon instances inside network namespaces.
#
# Sourceable bash library (needs root). One charon per (namespace, WORKDIR):
#
#   ip netns exec NS unshare -m --propagation private \
#       bash -c 'mount --bind WORKDIR/run /run && exec /usr/lib/ipsec/charon --use-syslog'
#
# The private mount namespace gives each charon its own /run (= /var/run): pid file
# and vici socket, so several charons run side by side. Because /run is a bind mount
# of WORKDIR/run, both are visible from outside as WORKDIR/run/charon.{pid,vici}; the
# mount disappears when charon exits (nothing leaks into the root mount namespace).
# Configuration: WORKDIR/strongswan.conf (STRONGSWAN_CONF, explicit plugin list) and
# WORKDIR/swanctl/swanctl.conf (SWANCTL_DIR), loaded over vici with swanctl.
# CHILD_SAs use kernel-libipsec (userspace ESP over a TUN device "ipsec0", always
# UDP-encapsulated on port 4500), so no kernel ESP/xfrm support is needed; it must be
# loaded before kernel-netlink, or charon tries xfrm and fails ("Protocol not
# supported"). Routes for CHILD_SAs go to table 220 (rule "not fwmark 0x4b4c lookup
# 220"; charon marks its own IKE/ESP-in-UDP sockets 0x4b4c so they bypass ipsec0).
# Needs packages strongswan-charon, strongswan-swanctl, libcharon-extra-plugins
# (kernel-libipsec) and libstrongswan-standard-plugins (openssl: ECP and X25519).
#
# Functions (return 0 on success and print nothing; on failure print a message and
# the log tail to stderr and return non-zero):
#
#   sw_gateway_start NS WORKDIR GW_ADDR [options]    responder, connection "gw"
#       --psk SECRET       pre-shared key (default: $SW_DEFAULT_PSK)
#       --cert-dir DIR     authenticate the gateway with a certificate instead of the
#                          PSK: DIR/x509/*.pem (first file = gateway cert; local id is
#                          then the cert's subject), DIR/private|pkcs8|rsa|ecdsa/* (key),
#                          DIR/x509ca/* (CAs). Clients still authenticate with the PSK.
#       --ts CIDR          local traffic selector (default 10.200.0.0/16). If NS has
#                          no address inside it, the first host (10.200.0.1/32) is
#                          added to lo (kernel-libipsec cannot route the CHILD_SA
#                          otherwise) and removed by sw_gateway_stop.
#       --no-ts-addr       do not add that address
#       --pool CIDR|none   virtual IP pool for clients (default 10.201.0.0/24). With a
#                          pool the gateway requires clients to request an address.
#       --ike PROPOSALS    IKE proposals (default: $SW_GW_IKE_PROPOSALS)
#       --esp PROPOSALS    ESP proposals (default: $SW_ESP_PROPOSALS)
#       --charon KEY=VALUE extra "charon { KEY = VALUE }" setting, repeatable
#                          (e.g. spi_label=0x.., spi_mask=0x.., cookie_threshold=..)
#       --conn KEY=VALUE   extra setting of the connection, repeatable (e.g. dpd_delay=2s,
#                          fragmentation=no, keyingtries=0)
#       --child KEY=VALUE  extra setting of its CHILD_SA, repeatable (e.g. dpd_action=restart)
#       --remote-auth M    how clients authenticate: psk (default) or pubkey (certificates
#                          issued by a CA of --cert-dir's x509ca)
#   sw_gateway_stop NS WORKDIR      SIGTERM, SIGKILL after 3 s; idempotent
#   sw_client_start NS WORKDIR CLIENT_ADDR VIP [options]   initiator, connection "ikelb"
#       remote_addrs = VIP, local id = CLIENT_ADDR, remote id = %any
#       --psk SECRET, --ike PROPOSALS (default: $SW_CLIENT_IKE_PROPOSALS), --esp,
#       --charon KEY=VALUE, --conn KEY=VALUE, --child KEY=VALUE  as above
#       --cert-dir DIR     trust DIR/x509ca/* and require a certificate from the gateway
#       --local-cert       authenticate the client with a certificate too: the first file of
#                          --cert-dir's x509/ and its key (local id: the cert's subject;
#                          the certificate is always sent)
#       --ts CIDR          remote traffic selector (default 10.200.0.0/16)
#       --no-vip-request   do not request an inner address (vips); the CHILD_SA is then
#                          CLIENT_ADDR/32 === --ts. Needs a gateway started with
#                          --pool none (a gateway with a pool answers FAILED_CP_REQUIRED).
#   sw_client_up NS WORKDIR [TIMEOUT=15]   initiate; wait for IKE + CHILD established
#   sw_client_down NS WORKDIR              terminate the IKE_SA (idempotent)
#   sw_client_stop NS WORKDIR              = sw_gateway_stop
#   (a failed sw_*_start leaves nothing running; call the stop function anyway in
#   cleanup paths, it is a no-op when nothing runs)
#   sw_swanctl NS WORKDIR ARGS...          run swanctl against that charon
#   sw_half_open NS WORKDIR                print the half-open IKE_SA count, parsed
#                                          from "IKE_SAs: 1 total, 0 half-open" of --stats
#   sw_ike_sa_count NS WORKDIR             print the total IKE_SA count
#   sw_client_vip NS WORKDIR               print the inner address the client got
#   sw_running WORKDIR                     0 if that charon is alive
#
# Files under WORKDIR: strongswan.conf, swanctl/, run/ (charon.pid, charon.vici),
# charon.log (filelog), charon.out (stdout/stderr), swanctl.out (last load output).
# WORKDIR must not be under /run. swanctl talks to unix://WORKDIR/run/charon.vici,
# or, if that path is too long for a unix socket, runs inside charon's mount
# namespace (nsenter -t PID -m). Only one charon may run per namespace (UDP 500).
# The gateway's default IKE proposals include an sha1/modp1024 one so that plain
# "ike-scan --ikev2" (AES/3DES, SHA1/MD5, groups 2/5/14) gets an answer.

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac
SW_CHARON=${SW_CHARON:-/usr/lib/ipsec/charon}
SW_SWANCTL_BIN=${SW_SWANCTL_BIN:-/usr/sbin/swanctl}
SW_PLUGIN_DIR=${SW_PLUGIN_DIR:-/usr/lib/ipsec/plugins}
SW_DEFAULT_PSK=${SW_DEFAULT_PSK:-ikelb-test-psk-0123456789}
SW_GW_IKE_PROPOSALS=${SW_GW_IKE_PROPOSALS:-aes256-sha256-x25519,aes128-sha256-ecp256,aes256-sha256-modp2048,aes256-aes128-sha256-sha1-x25519-ecp256-ecp384-modp2048-modp3072-modp1024,default}
SW_CLIENT_IKE_PROPOSALS=${SW_CLIENT_IKE_PROPOSALS:-aes256-sha256-x25519,aes128-sha256-ecp256,aes256-sha256-modp2048}
SW_ESP_PROPOSALS=${SW_ESP_PROPOSALS:-aes256-sha256,aes128-sha256,aes128gcm16,default}
SW_LOGLEVEL=${SW_LOGLEVEL:-1}
# In this order; the first group is mandatory. kernel-libipsec must precede
# kernel-netlink so that it provides the kernel_ipsec interface.
SW_PLUGINS_REQUIRED="random nonce kdf openssl sha2 hmac pem pkcs1 pkcs8 x509 pubkey
  kernel-libipsec kernel-netlink socket-default vici"
SW_PLUGINS_OPTIONAL="drbg aes sha1 gmp gcm mgf1 curve25519 constraints attr"

_sw_err() { echo "sw: $*" >&2; }

_sw_log_tail() {  # WORKDIR
  local wd=$1 f
  for f in "$wd/charon.log" "$wd/charon.out"; do
    if [[ -s $f ]]; then
      echo "---- tail of $f" >&2
      tail -n "${SW_TAIL_LINES:-40}" "$f" >&2
    fi
  done
}

# Prints the charon.load list; fails naming what is missing.
_sw_plugins() {
  local p list="" missing=""
  for p in $SW_PLUGINS_REQUIRED; do
    if [[ -e $SW_PLUGIN_DIR/libstrongswan-$p.so ]]; then list+="$p "; else missing+="$p "; fi
  done
  if [[ -n $missing ]]; then
    _sw_err "missing strongSwan plugins in $SW_PLUGIN_DIR: $missing(packages: strongswan-charon," \
      "libcharon-extra-plugins for kernel-libipsec, libstrongswan-standard-plugins for openssl)"
    return 1
  fi
  for p in $SW_PLUGINS_OPTIONAL; do
    [[ -e $SW_PLUGIN_DIR/libstrongswan-$p.so ]] && list+="$p "
  done
  echo "${list% }"
}

# PID of the charon owning WORKDIR, or fails. Checks the process really is a charon
# started with this WORKDIR's strongswan.conf (guards against PID reuse).
_sw_pid() {
  local wd=$1 f pid
  for f in "$wd/run/charon.pid" "$wd/sw.pid"; do
    [[ -r $f ]] || continue
    read -r pid <"$f" 2>/dev/null || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    [[ -r /proc/$pid/environ ]] || continue
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
        grep -qxF "STRONGSWAN_CONF=$wd/strongswan.conf"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# 0 if PID exists and is not a zombie
_sw_alive() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  st=$(sed -E 's/^.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

sw_running() { _sw_pid "$(_sw_abs "$1")" >/dev/null; }

_sw_abs() { local d; d=$(cd "$1" 2>/dev/null && pwd -P) || d=$1; echo "$d"; }

# sw_swanctl NS WORKDIR ARGS...
sw_swanctl() {
  if (($# < 2)); then _sw_err "usage: sw_swanctl NS WORKDIR ARGS..."; return 2; fi
  local ns=$1 wd; wd=$(_sw_abs "$2"); shift 2
  local sock="$wd/run/charon.vici"
  local -a envs=("STRONGSWAN_CONF=$wd/strongswan.conf" "SWANCTL_DIR=$wd/swanctl")
  local -a to=()
  [[ -n ${SW_SWANCTL_TIMEOUT:-} ]] && to=(timeout -k 1 "$SW_SWANCTL_TIMEOUT")
  if ((${#sock} <= 100)); then
    env "${envs[@]}" "${to[@]}" "$SW_SWANCTL_BIN" "$@" --uri "unix://$sock"
  else
    # Socket path too long for sun_path: talk to /run/charon.vici inside charon's
    # mount namespace instead.
    local pid
    pid=$(_sw_pid "$wd") || { _sw_err "no charon running for $wd"; return 1; }
    env "${envs[@]}" "${to[@]}" nsenter -t "$pid" -m "$SW_SWANCTL_BIN" "$@" --uri "unix:///run/charon.vici"
  fi
}

# Common option parsing into _sw_opt_* variables.
_sw_parse_opts() {
  _sw_opt_psk=$SW_DEFAULT_PSK _sw_opt_certdir="" _sw_opt_ts=10.200.0.0/16
  _sw_opt_pool=10.201.0.0/24 _sw_opt_ike="" _sw_opt_esp=$SW_ESP_PROPOSALS
  _sw_opt_vips=yes _sw_opt_tsaddr=yes _sw_opt_localcert=no _sw_opt_remoteauth=psk
  _sw_opt_charon=() _sw_opt_conn=() _sw_opt_child=()
  while (($#)); do
    case $1 in
      --psk) _sw_opt_psk=${2?--psk needs a value}; shift 2 ;;
      --cert-dir) _sw_opt_certdir=${2?--cert-dir needs a value}; shift 2 ;;
      --ts) _sw_opt_ts=${2?--ts needs a value}; shift 2 ;;
      --pool) _sw_opt_pool=${2?--pool needs a value}; shift 2 ;;
      --ike) _sw_opt_ike=${2?--ike needs a value}; shift 2 ;;
      --esp) _sw_opt_esp=${2?--esp needs a value}; shift 2 ;;
      --charon) _sw_opt_charon+=("${2?--charon needs KEY=VALUE}"); shift 2 ;;
      --conn) _sw_opt_conn+=("${2?--conn needs KEY=VALUE}"); shift 2 ;;
      --child) _sw_opt_child+=("${2?--child needs KEY=VALUE}"); shift 2 ;;
      --remote-auth) _sw_opt_remoteauth=${2?--remote-auth needs psk or pubkey}; shift 2 ;;
      --local-cert) _sw_opt_localcert=yes; shift ;;
      --no-vip-request) _sw_opt_vips=no; shift ;;
      --no-ts-addr) _sw_opt_tsaddr=no; shift ;;
      *) _sw_err "unknown option: $1"; return 2 ;;
    esac
  done
  # --conn and --child as swanctl.conf lines, indented for their sections
  _sw_opt_conn_text=$(_sw_settings "    " "${_sw_opt_conn[@]}") || return 2
  _sw_opt_child_text=$(_sw_settings "        " "${_sw_opt_child[@]}") || return 2
}

# _sw_write_strongswan_conf WORKDIR
_sw_write_strongswan_conf() {
  local wd=$1 plugins kv
  plugins=$(_sw_plugins) || return 1
  {
    cat <<EOF
# generated by tests/netns/strongswan.sh
charon {
  load = $plugins
  port = 500
  port_nat_t = 4500
  # no DNS lookups, no syslog; logs go to $wd/charon.log
  syslog {
    daemon {
      default = -1
    }
  }
  filelog {
    sw {
      path = $wd/charon.log
      time_format = %H:%M:%S
      append = yes
      flush_line = yes
      default = 0
      ike = $SW_LOGLEVEL
      cfg = $SW_LOGLEVEL
      net = $SW_LOGLEVEL
      knl = $SW_LOGLEVEL
      esp = $SW_LOGLEVEL
      dmn = $SW_LOGLEVEL
      lib = $SW_LOGLEVEL
      chd = $SW_LOGLEVEL
    }
  }
  plugins {
    vici {
      socket = unix:///run/charon.vici
    }
    # Let a CHILD_SA cover the IKE peer itself (--no-vip-request): charon marks its
    # own IKE/ESP-in-UDP packets so they bypass routing table 220 (and ipsec0).
    kernel-libipsec {
      allow_peer_ts = yes
    }
    socket-default {
      fwmark = 0x4b4c
    }
    kernel-netlink {
      fwmark = !0x4b4c
    }
  }
EOF
    for kv in "${_sw_opt_charon[@]}"; do
      [[ $kv == *=* ]] || { _sw_err "--charon wants KEY=VALUE, got '$kv'"; return 2; }
      echo "  ${kv%%=*} = ${kv#*=}"
    done
    cat <<EOF
}
swanctl {
  load = pem pkcs1 pkcs8 x509 openssl
}
EOF
  } >"$wd/strongswan.conf.new" || return 1
  mv -f "$wd/strongswan.conf.new" "$wd/strongswan.conf"
}

# _sw_copy_certs WORKDIR CERTDIR
_sw_copy_certs() {
  local wd=$1 cd=$2 sub
  [[ -d $cd ]] || { _sw_err "cert dir $cd does not exist"; return 1; }
  for sub in x509 x509ca private pkcs8 rsa ecdsa; do
    if [[ -d $cd/$sub ]]; then
      cp -a "$cd/$sub/." "$wd/swanctl/$sub/" || return 1
    fi
  done
}

# _sw_launch NS WORKDIR ROLE: start charon, wait for vici, load swanctl.conf.
_sw_launch() {
  local ns=$1 wd=$2 role=$3 launcher i pid
  if ! ip netns exec "$ns" true 2>/dev/null; then
    _sw_err "network namespace '$ns' not usable"
    return 1
  fi
  if [[ ! -x $SW_CHARON ]]; then
    _sw_err "$SW_CHARON not found (apt-get install strongswan-charon)"
    return 1
  fi
  if [[ ! -c /dev/net/tun ]]; then
    _sw_err "/dev/net/tun missing (kernel-libipsec needs TUN)"
    return 1
  fi
  # Linux lets a second charon bind port 500 too (SO_REUSEADDR) and then steals
  # the traffic silently: one charon per namespace.
  if [[ -n $(ip netns exec "$ns" ss -Hlun 'sport = :500' 2>/dev/null) ]]; then
    _sw_err "UDP port 500 is already in use in namespace $ns (one charon per namespace)"
    return 1
  fi
  rm -f "$wd/run/charon.pid" "$wd/run/charon.vici" "$wd/sw.pid"
  echo "$ns" >"$wd/sw.ns"
  echo "$role" >"$wd/sw.role"
  : >"$wd/charon.log"
  # shellcheck disable=SC2016  # expanded by the inner bash
  # ip netns exec and unshare exec (no fork), bash execs charon: $! is charon's PID.
  # Inherited descriptors above 2 are closed so that charon cannot hold a caller's
  # pipe open; --use-syslog stops charon's stderr logger (filelog does the logging).
  STRONGSWAN_CONF="$wd/strongswan.conf" \
    ip netns exec "$ns" unshare -m --propagation private \
    /bin/bash -c 'for f in /proc/$$/fd/*; do f=${f##*/}; ((f > 2)) && eval "exec $f>&-"; done 2>/dev/null
      mount --bind "$1/run" /run && exec "$2" --use-syslog' sw-charon "$wd" "$SW_CHARON" \
    </dev/null >"$wd/charon.out" 2>&1 &
  launcher=$!
  disown "$launcher" 2>/dev/null  # no job notifications in the caller's shell
  echo "$launcher" >"$wd/sw.pid"
  for ((i = 0; i < 200; i++)); do
    if [[ -S $wd/run/charon.vici ]] && sw_swanctl "$ns" "$wd" --stats >/dev/null 2>&1; then
      break
    fi
    if ! _sw_alive "$launcher"; then
      _sw_err "charon in $ns exited during startup"
      _sw_log_tail "$wd"
      return 1
    fi
    sleep 0.05
  done
  if ((i >= 200)); then
    _sw_err "charon in $ns: vici socket did not answer within 10 s"
    _sw_log_tail "$wd"
    sw_gateway_stop "$ns" "$wd"
    return 1
  fi
  if ! sw_swanctl "$ns" "$wd" --load-all --noprompt --file "$wd/swanctl/swanctl.conf" \
      >"$wd/swanctl.out" 2>&1 || grep -qiE 'fail|error|invalid|unknown' "$wd/swanctl.out"; then
    _sw_err "charon in $ns: swanctl --load-all failed"
    cat "$wd/swanctl.out" >&2
    _sw_log_tail "$wd"
    sw_gateway_stop "$ns" "$wd"
    return 1
  fi
  return 0
}

# _sw_prepare WORKDIR: refuse a live instance; create the directory layout.
_sw_prepare() {
  local wd=$1 pid
  if pid=$(_sw_pid "$wd"); then
    _sw_err "a charon (pid $pid) is already running for $wd"
    return 1
  fi
  case $wd/ in
    /run/* | /var/run/*)
      _sw_err "WORKDIR must not be under /run (it is hidden by the private /run)"
      return 1 ;;
  esac
  mkdir -p "$wd/run" "$wd/swanctl"/{x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12} || return 1
  chmod 700 "$wd/swanctl"/{private,rsa,ecdsa,bliss,pkcs8,pkcs12}
}

# _sw_settings INDENT KEY=VALUE...: one "KEY = VALUE" line each
_sw_settings() {
  local indent=$1 kv; shift
  for kv in "$@"; do
    [[ $kv == *=* ]] || { _sw_err "expected KEY=VALUE, got '$kv'"; return 2; }
    printf '%s%s = %s\n' "$indent" "${kv%%=*}" "${kv#*=}"
  done
}

_sw_quote() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

_sw_ip2int() {  # dotted quad -> integer; fails on anything else
  local IFS=. a b c d
  [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
  read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

_sw_int2ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }

# kernel-libipsec installs the route for a CHILD_SA only if the host owns an address
# inside the local traffic selector. Give the gateway namespace the first host of an
# IPv4 --ts on lo unless it already has one there (removed again by sw_gateway_stop).
_sw_ensure_ts_addr() {  # NS WORKDIR CIDR
  local ns=$1 wd=$2 cidr=$3 net len base mask a ai first
  [[ $cidr == */* ]] || cidr=$cidr/32
  net=${cidr%/*} len=${cidr#*/}
  base=$(_sw_ip2int "$net") || return 0  # IPv6 or a range: leave it to the caller
  ((len == 0)) && return 0               # 0.0.0.0/0 matches any address
  mask=$(((0xffffffff << (32 - len)) & 0xffffffff))
  base=$((base & mask))
  for a in $(ip -n "$ns" -4 -o addr show 2>/dev/null | awk '{print $4}'); do
    ai=$(_sw_ip2int "${a%/*}") || continue
    (((ai & mask) == base)) && return 0
  done
  first=$(_sw_int2ip $((len >= 31 ? base : base + 1)))
  ip -n "$ns" link set lo up 2>/dev/null
  if ! ip -n "$ns" addr add "$first/32" dev lo; then
    _sw_err "cannot add $first/32 to lo in $ns"
    return 1
  fi
  echo "$first/32" >"$wd/sw.addr"
}

# sw_gateway_start NS WORKDIR GW_ADDR [--psk SECRET] [--cert-dir DIR] [...]
sw_gateway_start() {
  if (($# < 3)); then _sw_err "usage: sw_gateway_start NS WORKDIR GW_ADDR [options]"; return 2; fi
  local ns=$1 wd=$2 gw=$3; shift 3
  _sw_parse_opts "$@" || return 2
  mkdir -p "$wd" || return 1
  wd=$(_sw_abs "$wd")
  _sw_prepare "$wd" || return 1
  _sw_write_strongswan_conf "$wd" || return 1
  local ike=${_sw_opt_ike:-$SW_GW_IKE_PROPOSALS} local_auth pools="" poolsec="" cert sendcert=""
  if [[ -n $_sw_opt_certdir ]]; then
    _sw_copy_certs "$wd" "$_sw_opt_certdir" || return 1
    local -a certs=("$wd/swanctl/x509"/*)
    [[ -f ${certs[0]} ]] || { _sw_err "no certificate in $_sw_opt_certdir/x509"; return 1; }
    cert=${certs[0]##*/}
    local_auth="auth = pubkey
      certs = $cert"
    sendcert="send_cert = always"
  else
    local_auth="auth = psk
      id = $gw"
  fi
  if [[ $_sw_opt_pool != none ]]; then
    pools="pools = pool0"
    poolsec="pools {
  pool0 {
    addrs = $_sw_opt_pool
  }
}"
  fi
  case $_sw_opt_remoteauth in
    psk) ;;
    pubkey) [[ -n $_sw_opt_certdir ]] || { _sw_err "--remote-auth pubkey needs --cert-dir"; return 2; } ;;
    *) _sw_err "--remote-auth: psk or pubkey, not '$_sw_opt_remoteauth'"; return 2 ;;
  esac
  cat >"$wd/swanctl/swanctl.conf" <<EOF
# generated by tests/netns/strongswan.sh (gateway $gw)
connections {
  gw {
    version = 2
    remote_addrs = %any
    proposals = $ike
    $pools
    send_certreq = no
    $sendcert
$_sw_opt_conn_text
    local {
      $local_auth
    }
    remote {
      auth = $_sw_opt_remoteauth
      id = %any
    }
    children {
      net {
        local_ts = $_sw_opt_ts
        remote_ts = dynamic
        esp_proposals = $_sw_opt_esp
$_sw_opt_child_text
      }
    }
  }
}
$poolsec
secrets {
  ike-any {
    secret = $(_sw_quote "$_sw_opt_psk")
  }
}
EOF
  if [[ $_sw_opt_tsaddr == yes ]]; then
    _sw_ensure_ts_addr "$ns" "$wd" "$_sw_opt_ts" || return 1
  fi
  _sw_launch "$ns" "$wd" gateway
}

# sw_client_start NS WORKDIR CLIENT_ADDR VIP [--psk SECRET] [...]
sw_client_start() {
  if (($# < 4)); then _sw_err "usage: sw_client_start NS WORKDIR CLIENT_ADDR VIP [options]"; return 2; fi
  local ns=$1 wd=$2 caddr=$3 vip=$4; shift 4
  _sw_parse_opts "$@" || return 2
  mkdir -p "$wd" || return 1
  wd=$(_sw_abs "$wd")
  _sw_prepare "$wd" || return 1
  _sw_write_strongswan_conf "$wd" || return 1
  local ike=${_sw_opt_ike:-$SW_CLIENT_IKE_PROPOSALS} remote_auth vips="" sendcert=""
  local local_auth="auth = psk
      id = $caddr"
  if [[ -n $_sw_opt_certdir ]]; then
    _sw_copy_certs "$wd" "$_sw_opt_certdir" || return 1
    remote_auth="auth = pubkey"
  else
    remote_auth="auth = psk"
  fi
  if [[ $_sw_opt_localcert == yes ]]; then
    local -a certs=("$wd/swanctl/x509"/*)
    [[ -n $_sw_opt_certdir && -f ${certs[0]} ]] ||
      { _sw_err "--local-cert needs a certificate in --cert-dir's x509/"; return 1; }
    local_auth="auth = pubkey
      certs = ${certs[0]##*/}"
    sendcert="send_cert = always"
  fi
  [[ $_sw_opt_vips == yes ]] && vips="vips = 0.0.0.0"
  cat >"$wd/swanctl/swanctl.conf" <<EOF
# generated by tests/netns/strongswan.sh (client $caddr -> $vip)
connections {
  ikelb {
    version = 2
    remote_addrs = $vip
    proposals = $ike
    $vips
    send_certreq = $([[ -n $_sw_opt_certdir ]] && echo yes || echo no)
    $sendcert
$_sw_opt_conn_text
    local {
      $local_auth
    }
    remote {
      $remote_auth
      id = %any
    }
    children {
      ikelb {
        local_ts = dynamic
        remote_ts = $_sw_opt_ts
        esp_proposals = $_sw_opt_esp
$_sw_opt_child_text
      }
    }
  }
}
secrets {
  ike-any {
    secret = $(_sw_quote "$_sw_opt_psk")
  }
}
EOF
  _sw_launch "$ns" "$wd" client
}

# sw_client_up NS WORKDIR [TIMEOUT]
sw_client_up() {
  if (($# < 2)); then _sw_err "usage: sw_client_up NS WORKDIR [TIMEOUT]"; return 2; fi
  local ns=$1 wd; wd=$(_sw_abs "$2"); local t=${3:-15} out rc
  out=$(SW_SWANCTL_TIMEOUT=$((t + 3)) sw_swanctl "$ns" "$wd" --initiate --child ikelb --timeout "$t" 2>&1)
  rc=$?
  if ((rc == 0)); then
    local sas
    sas=$(sw_swanctl "$ns" "$wd" --list-sas --ike ikelb 2>&1)
    if grep -q ESTABLISHED <<<"$sas" && grep -q INSTALLED <<<"$sas"; then
      return 0
    fi
    out+=$'\n'"--list-sas: $sas"
  fi
  _sw_err "client in $ns: initiate failed (rc $rc)"
  printf '%s\n' "$out" | tail -n 30 >&2
  _sw_log_tail "$wd"
  return 1
}

# sw_client_down NS WORKDIR
sw_client_down() {
  if (($# < 2)); then _sw_err "usage: sw_client_down NS WORKDIR"; return 2; fi
  local ns=$1 wd=$2 out
  if ! sw_swanctl "$ns" "$wd" --list-sas --ike ikelb 2>/dev/null | grep -q '^ikelb:'; then
    return 0
  fi
  # 15 s: room for charon's first two retransmits of the DELETE (4 s, then 7.2 s later); a busy
  # machine has been seen to lose the first answer within 5 s.
  out=$(sw_swanctl "$ns" "$wd" --terminate --ike ikelb --timeout 15 2>&1) && return 0
  sw_swanctl "$ns" "$wd" --list-sas --ike ikelb 2>/dev/null | grep -q '^ikelb:' || return 0
  _sw_err "client in $ns: terminate failed"
  printf '%s\n' "$out" >&2
  return 1
}

# sw_gateway_stop NS WORKDIR (also stops clients)
sw_gateway_stop() {
  if (($# < 2)); then _sw_err "usage: sw_gateway_stop NS WORKDIR"; return 2; fi
  local wd pid i; wd=$(_sw_abs "$2")
  if pid=$(_sw_pid "$wd"); then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 60; i++)); do
      _sw_alive "$pid" || break
      sleep 0.05
    done
    if _sw_alive "$pid"; then
      _sw_err "charon $pid ($wd) ignored SIGTERM for 3 s, killing"
      kill -KILL "$pid" 2>/dev/null
      for ((i = 0; i < 40; i++)); do
        _sw_alive "$pid" || break
        sleep 0.05
      done
    fi
    if _sw_alive "$pid" && _sw_pid "$wd" >/dev/null; then
      _sw_err "charon $pid ($wd) still alive"
      return 1
    fi
  fi
  rm -f "$wd/run/charon.pid" "$wd/run/charon.vici" "$wd/sw.pid" 2>/dev/null
  if [[ -s $wd/sw.addr ]]; then
    ip -n "$1" addr del "$(cat "$wd/sw.addr")" dev lo 2>/dev/null
    rm -f "$wd/sw.addr"
  fi
  return 0
}

sw_client_stop() { sw_gateway_stop "$@"; }

# _sw_stats_field NS WORKDIR total|half-open
_sw_stats_field() {
  local out n
  out=$(sw_swanctl "$1" "$2" --stats 2>&1) || { _sw_err "swanctl --stats failed: $out"; return 1; }
  # line format: "IKE_SAs: 1 total, 0 half-open"
  case $3 in
    total) n=$(sed -nE 's/^IKE_SAs: ([0-9]+) total.*/\1/p' <<<"$out") ;;
    half-open) n=$(sed -nE 's/^IKE_SAs: .*[ ,]([0-9]+) half-open.*/\1/p' <<<"$out") ;;
  esac
  [[ -n $n ]] || { _sw_err "cannot parse swanctl --stats: $out"; return 1; }
  echo "$n"
}

sw_half_open() { _sw_stats_field "$1" "$2" half-open; }
sw_ike_sa_count() { _sw_stats_field "$1" "$2" total; }

# sw_client_vip NS WORKDIR: inner address assigned to the client ("" if none)
sw_client_vip() {
  sw_swanctl "$1" "$2" --list-sas --ike ikelb 2>/dev/null |
    awk '/^  ikelb: / {c=1; next} c && /^    local / {print $2; exit}' | sed -E 's#/32$##'
}
