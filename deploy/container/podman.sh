#!/bin/bash
# podman with its configuration, storage and state under DIR (podman-env.sh), for the tests and
# for trying the image by hand without touching the host's podman set-up:
#   deploy/container/podman.sh DIR load -i build/container/ikelb-0.1.0.oci.tar
#   deploy/container/podman.sh DIR run ... localhost/ikelb:0.1.0 ...
set -euo pipefail
source "$(dirname "$0")/podman-env.sh"
podman_env "${1:?usage: podman.sh DIR PODMAN-ARGS...}"
shift
podman_ "$@"
