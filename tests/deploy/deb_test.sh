#!/usr/bin/env bash
# The Debian package (ctest deploy_deb_package), built by CPack from BUILD_DIR and
#   1. inspected: file name ikelb_<version>_<arch>.deb, computed shared-library dependencies,
#      conffiles, maintainer scripts, every file under /usr, /etc or /lib/systemd;
#   2. installed, upgraded (reinstalled), removed and purged in a throwaway root made by mmdebstrap
#      (inside a private mount namespace, nothing on the host changes) with a bpffs of its own
#      holding a pin: install, upgrade and remove leave it; purge removes it via ikelbd --teardown.
# Usage: deb_test.sh BUILD_DIR VERSION
# The Debian mirror is the one apt uses on this machine (/etc/apt/sources.list*).
set -euo pipefail
build=$(realpath "$1") version=$2
for tool in cpack dpkg-deb dpkg-shlibdeps mmdebstrap unshare bpftool; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (deploy/packages.txt)"; exit 1; }
done
fail() { echo "FAIL: $*"; exit 1; }
work=$(mktemp -d /tmp/ikelb-deb-XXXXXX)
trap 'if [[ -n ${IKELB_DEB_KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi' EXIT

# ---- 1. build and inspect ----
start=$SECONDS
cmake --build "$build" --target ikelbd ikelbctl ikelb_man >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "building what the package holds"; }
cpack --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack"; }
arch=$(dpkg --print-architecture)
deb=$work/ikelb_${version}_${arch}.deb
[[ -f $deb ]] || fail "no $(basename "$deb") in: $(ls "$work")"
echo "ok: $(basename "$deb") ($(stat -c %s "$deb") bytes, cpack $((SECONDS - start)) s)"

info=$(dpkg-deb -I "$deb")
for member in control conffiles postinst prerm postrm; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? +$member" <<<"$info" || fail "dpkg-deb -I: no $member"
done
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == ikelb && $(field Version) == "$version" && $(field Architecture) == "$arch" ]] ||
  fail "control: $(field Package) $(field Version) $(field Architecture)"
depends=$(field Depends)
for lib in libc6 libstdc++6 libbpf1 libcap2 procps; do
  [[ ", $depends," == *", $lib "* || ", $depends," == *", $lib,"* ]] ||
    fail "Depends lacks $lib: $depends"
done
[[ $depends =~ libc6\ \(\>=\ [0-9.]+\) ]] || fail "libc6 without a computed version: $depends"
echo "ok: Depends: $depends"
dpkg-deb -e "$deb" "$work/control"
[[ $(cat "$work/control/conffiles") == /etc/ikelb/ikelb.json ]] ||
  fail "conffiles: $(cat "$work/control/conffiles")"
for s in postinst prerm postrm; do
  [[ -x $work/control/$s ]] || fail "maintainer script $s missing or not executable"
done
# Commands only (comments may explain): no script but postrm runs a teardown or touches XDP.
for s in postinst prerm; do
  ! grep -v '^[[:space:]]*#' "$work/control/$s" | grep -qE 'teardown|xdp|ip link' ||
    fail "$s runs a teardown or touches XDP (only postrm purge may)"
done
grep -v '^[[:space:]]*#' "$work/control/postrm" | grep -q 'ikelbd --config .* --teardown' ||
  fail "postrm purge does not run ikelbd --teardown"
echo "ok: conffiles /etc/ikelb/ikelb.json; postinst, prerm, postrm"

files=$(dpkg-deb -c "$deb" | awk '{print $6}')
stray=$(grep -v -E '^\./(usr|etc|lib/systemd)(/|$)' <<<"$files" | grep -v -x -E '\./|\./lib/' || true)
[[ -z $stray ]] || fail "files outside /usr, /etc, /lib/systemd: $stray"
for f in ./usr/sbin/ikelbd ./usr/sbin/ikelbctl ./etc/ikelb/ikelb.json \
  ./lib/systemd/system/ikelbd.service ./usr/share/man/man8/ikelbd.8.gz \
  ./usr/share/man/man8/ikelbctl.8.gz ./usr/share/ikelb/grafana/ikelb-dashboard.json \
  ./usr/share/ikelb/prometheus/ikelb-rules.yml ./usr/share/doc/ikelb/examples/minimal.json; do
  grep -qx -- "$f" <<<"$files" || fail "$f not in the package"
done
echo "ok: $(wc -l <<<"$files") entries, all under /usr, /etc, /lib/systemd"

# ---- 2. install, upgrade, remove, purge in a throwaway root ----
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  if [[ -f $f ]]; then sources+=("$f"); fi
done
((${#sources[@]})) || fail "no /etc/apt/sources.list*"
mirror=$(awk -v s="$codename" '
    /^deb / { for (i = 2; i <= NF; i++) if ($i == s && $(i - 1) ~ /^[a-z]+:/) { print $(i - 1); exit } }
    /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s && uri) { print uri; exit } }' \
  "${sources[@]}")
[[ -n $mirror ]] || fail "no apt source for $codename in /etc/apt/sources.list*"
echo "mirror: $mirror ($codename)"

# The lifecycle runs as a customize hook (deb_lifecycle.sh) once mmdebstrap installed the package.
export IKELB_DEB_NAME=${deb##*/} IKELB_VERSION=$version
hooks=(--customize-hook="copy-in $deb /tmp" --customize-hook="$(dirname "$0")/deb_lifecycle.sh")
start=$SECONDS
# A private mount namespace: every mount mmdebstrap and the hooks make vanishes with it.
if ! unshare -m --propagation private mmdebstrap --variant=essential --include="$deb" \
  "${hooks[@]}" --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  "$codename" /dev/null "$mirror" >"$work/mmdebstrap.log" 2>&1; then
  tail -40 "$work/mmdebstrap.log"
  fail "install/upgrade/remove/purge in the throwaway root"
fi
grep -q "install, upgrade, remove, purge all passed" "$work/mmdebstrap.log" ||
  { tail -20 "$work/mmdebstrap.log"; fail "the last hook did not run"; }
echo "ok: installed, upgraded, removed and purged in a throwaway root ($((SECONDS - start)) s)"
