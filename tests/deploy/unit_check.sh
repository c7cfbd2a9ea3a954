#!/usr/bin/env bash
# The systemd unit as the package installs it (ctest deploy_systemd_unit):
#   - `systemd-analyze verify` prints nothing (it exits 0 on many errors, so any output fails);
#     a copy with one typo must make it print something (the check can fail);
#   - `systemd-analyze security --offline=true` rates it at or below MAX_EXPOSURE.
# Usage: unit_check.sh BUILD_DIR MAX_EXPOSURE
# The unit is installed with DESTDIR into a temporary directory; its ikelbd path is pointed at the
# staged binary (verify wants executables that exist; --root= does not work here) and MANPATH at
# the staged man pages (verify runs `man` for Documentation=man:...).
set -euo pipefail
build=$1 max=$2
for tool in systemd-analyze man; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (deploy/packages.txt)"; exit 1; }
done
stage=$(mktemp -d /tmp/ikelb-unit-XXXXXX)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage/root cmake --install "$build" >/dev/null
unit=$stage/root/lib/systemd/system/ikelbd.service
[[ -f $unit ]] || { echo "FAIL: no ikelbd.service under lib/systemd/system"; exit 1; }
sbin=$(sed -n 's|^ExecStart=\(.*\)/ikelbd .*|\1|p' "$unit")
[[ -x $stage/root$sbin/ikelbd ]] || { echo "FAIL: ExecStart names $sbin/ikelbd, not installed"; exit 1; }
mkdir "$stage/units"
sed "s|$sbin/ikelbd|$stage/root$sbin/ikelbd|g" "$unit" > "$stage/units/ikelbd.service"

verify() {  # prints everything systemd-analyze verify says about the unit in directory $1
  (cd "$1" && MANPATH=$stage/root/usr/share/man systemd-analyze verify ./ikelbd.service 2>&1)
}

out=$(verify "$stage/units")
if [[ -n $out ]]; then
  echo "FAIL: systemd-analyze verify is not silent:"
  echo "$out"
  exit 1
fi
echo "ok: systemd-analyze verify prints nothing"

# Negative control: the same check catches a typo.
mkdir "$stage/typo"
sed 's/^Type=notify$/Type=notifyy/' "$stage/units/ikelbd.service" > "$stage/typo/ikelbd.service"
out=$(verify "$stage/typo")
if [[ $out != *notifyy* ]]; then
  echo "FAIL: verify did not report Type=notifyy (said: $out)"
  exit 1
fi
echo "ok: a typo makes verify talk: $(head -1 <<<"$out")"

report=$(cd "$stage/units" && systemd-analyze security --offline=true ./ikelbd.service 2>&1)
level=$(sed -n 's/.*Overall exposure level for ikelbd.service: \([0-9.]*\).*/\1/p' <<<"$report")
if [[ -z $level ]]; then
  echo "FAIL: no exposure level in:"
  echo "$report"
  exit 1
fi
if ! awk -v l="$level" -v m="$max" 'BEGIN { exit !(l <= m) }'; then
  echo "FAIL: exposure $level above $max:"
  grep '✗' <<<"$report"
  exit 1
fi
echo "ok: exposure level $level (at most $max)"
