#!/bin/sh
# Regenerates ikelb.yaml, the plain manifest for clusters without Helm: the chart rendered with
# its default values for namespace kube-system. The test deploy_manifest_in_sync keeps it equal
# to `helm template` output. helm comes from tests/deploy/tools.sh (a cache under build/).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=$("$root/tests/deploy/tools.sh" "${IKELB_TOOLS_DIR:-$root/build/deploy-tools}")
"$tools/bin/helm" template ikelb "$root/deploy/helm/ikelb" --namespace kube-system \
  > "$here/ikelb.yaml"
echo "wrote $here/ikelb.yaml"
