#!/usr/bin/env bash
# mmdebstrap customize hook of deb_test.sh: $1 is the throwaway root, in which ikelb is installed
# and /tmp/$IKELB_DEB_NAME is the package. Runs on the host (mmdebstrap's private mount namespace);
# `chroot "$root"` runs inside the root. Exits non-zero (failing mmdebstrap) at the first problem.
set -euo pipefail
root=$1 pins=/sys/fs/bpf/ikelb
fail() { echo "HOOK FAILED: $*"; exit 1; }
in_root() { chroot "$root" "$@"; }

# A bpffs of the root's own, with a pin standing in for ikelb's maps.
mkdir -p "$root/sys/fs/bpf"
mount -t bpf bpf "$root/sys/fs/bpf"
trap 'umount "$root/sys/fs/bpf"' EXIT
mkdir "$root$pins"
bpftool map create "$root$pins/affinity" type hash key 4 value 4 entries 8 name affinity

# Installed: the shipped config is valid, the tools and man pages are there.
in_root ikelbd --config /etc/ikelb/ikelb.json --check || fail "the shipped config is rejected"
[[ $(in_root ikelbctl --version) == "ikelbctl $IKELB_VERSION" ]] || fail "ikelbctl --version"
in_root man -w ikelbd >/dev/null 2>&1 || [[ -f $root/usr/share/man/man8/ikelbd.8.gz ]] ||
  fail "no ikelbd man page"
[[ -f $root/lib/systemd/system/ikelbd.service ]] || fail "no unit"

# Upgrade (the same version again: prerm upgrade, postinst configure <old>): the pin stays.
in_root dpkg -i "/tmp/$IKELB_DEB_NAME" >/dev/null || fail "reinstall"
[[ -e $root$pins/affinity ]] || fail "an upgrade removed the pins"

# Remove: the binaries go, the conffile and the pin stay.
in_root dpkg --remove ikelb >/dev/null || fail "dpkg --remove"
[[ ! -e $root/usr/sbin/ikelbd ]] || fail "ikelbd left after remove"
[[ -f $root/etc/ikelb/ikelb.json ]] || fail "the conffile went with remove"
[[ -e $root$pins/affinity ]] || fail "remove removed the pins"

# Purge: ikelbd --teardown (the copy prerm kept) removes the pins; nothing of ikelb is left.
purge=$(in_root dpkg --purge ikelb 2>&1) || fail "dpkg --purge: $purge"
[[ $purge == *"removed 1 pinned objects under $pins"* ]] || fail "purge did not tear down: $purge"
[[ ! -e $root$pins ]] || fail "pins left after purge"
for p in /etc/ikelb /var/lib/ikelb /usr/sbin/ikelbctl; do
  [[ ! -e $root$p ]] || fail "$p left after purge"
done
echo "ikelb deb test: install, upgrade, remove, purge all passed"
