#!/bin/bash
# Builds the ikelb OCI image without any registry:
#   1. a root filesystem of Debian packages (mmdebstrap --variant=extract: the shared libraries
#      ikelbd and ikelbctl link against, found with ldd and dpkg -S, plus base-files and
#      netbase; no shell, no package manager),
#   2. ikelb installed on top (cmake --install of BUILD_DIR into ROOTFS/usr),
#   3. imported with podman (entrypoint /usr/sbin/ikelbd) and saved as an OCI archive.
# Usage (root): deploy/container/build.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR  a configured and built tree (default build/)
#   OUT_DIR    default BUILD_DIR/container: ikelb-VERSION.oci.tar, and image-info.txt with
#              the size and the time taken
# The Debian mirror is the host's (its apt sources); podman runs isolated (podman-env.sh) in a
# temporary directory that is removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${2:-$build/container}
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s.%N)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || { echo "build.sh: no project version in $build/CMakeCache.txt" >&2; exit 1; }
image=localhost/ikelb:$version
for b in ikelbd ikelbctl; do
  [ -x "$build/lb/$b" ] || { echo "build.sh: $build/lb/$b is not built" >&2; exit 1; }
done

work=$(mktemp -d /tmp/ikelb-image-$$-XXXXXX)
source "$here/podman-env.sh"
podman_env "$work/podman"
trap 'podman_ rmi -f "$image" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The Debian packages that own the libraries the binaries load (usrmerge: dpkg may know a
# library by its /lib path only).
packages=(base-files netbase)
for lib in $(ldd "$build/lb/ikelbd" "$build/lb/ikelbctl" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u); do
  real=$(readlink -f "$lib")
  owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true)
  [ -n "$owner" ] || { echo "build.sh: no Debian package owns $real" >&2; exit 1; }
  packages+=("${owner%%:*}")
done
include=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd, -)
sources=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$sources" ] || sources=/etc/apt/sources.list
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "build.sh: rootfs of $suite with $include"
mmdebstrap --quiet --variant=extract --include="$include" "$suite" "$work/rootfs" "$sources"

DESTDIR="$work/rootfs" cmake --install "$build" --prefix /usr --strip > "$work/install.log"
# The mount points of the DaemonSet; /tmp for libraries that want one.
mkdir -p "$work/rootfs/etc/ikelb" "$work/rootfs/run/ikelb" "$work/rootfs/sys/fs/bpf"
install -d -m 1777 "$work/rootfs/tmp"
"$work/rootfs/usr/sbin/ikelbd" --version > /dev/null  # runs with the host's loader at least

tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
podman_ import --quiet \
  --change 'ENTRYPOINT ["/usr/sbin/ikelbd"]' \
  --change 'CMD ["--config", "/etc/ikelb/ikelb.json", "--watch-config"]' \
  --change "LABEL org.opencontainers.image.title=ikelb org.opencontainers.image.version=$version" \
  "$work/rootfs.tar" "$image" > /dev/null
rm -f "$out/ikelb-$version.oci.tar"
podman_ save --quiet --format oci-archive -o "$out/ikelb-$version.oci.tar" "$image"
end=$(date +%s.%N)
size=$(podman_ image inspect --format '{{.Size}}' "$image")
{
  echo "image $image"
  echo "archive $out/ikelb-$version.oci.tar $(stat -c %s "$out/ikelb-$version.oci.tar") bytes"
  echo "image size $size bytes (uncompressed root filesystem)"
  echo "packages $include"
  awk -v s="$start" -v e="$end" 'BEGIN { printf "build time %.1f s\n", e - s }'
} | tee "$out/image-info.txt"
