#!/usr/bin/env bash
# One entry point for a fresh machine (run as root from anywhere):
#   deploy/setup.sh demo    install, build, start the lab (real strongSwan gateways and clients
#                           behind ikelb in network namespaces) and print its report
#   deploy/setup.sh test    install, build, run every test (ctest: unit, bpf, netns, fuzz,
#                           deploy)
#   deploy/setup.sh build   install and build only
#   deploy/setup.sh package install, build and make the Debian package build/ikelb_<version>_<arch>.deb
# The build goes to build/ in the repository.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="$repo/build"

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: run as root (the data path needs CAP_BPF and CAP_NET_ADMIN)" >&2
    exit 1
  fi
}

build() {
  "$repo/deploy/install-deps.sh"
  # Warnings are errors here (development and CI), never in a packager's build (IKELB_WERROR
  # defaults to OFF).
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIKELB_WERROR=ON \
    -DCMAKE_INSTALL_PREFIX=/usr
  cmake --build "$build" -j"$(nproc)"
}

case "${1:-}" in
  demo)
    need_root
    build
    "$repo/deploy/lab/lab.sh" up
    ;;
  test)
    need_root
    build
    ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
    ;;
  build)
    need_root
    build
    ;;
  package)
    need_root
    build
    (cd "$build" && cpack --config CPackConfig.cmake)
    ;;
  *)
    echo "usage: $0 demo|test|build|package" >&2
    exit 2
    ;;
esac
