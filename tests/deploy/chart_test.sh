#!/bin/bash
# The Helm chart (deploy/helm/ikelb) and the plain manifest (deploy/kubernetes/ikelb.yaml),
# offline: no cluster can run here, so everything up to it is tested.
#
#   chart_test.sh lint      IKELBD   helm lint --strict with every values file; the values files
#                                    of tests/deploy/bad-values must each fail with their message
#   chart_test.sh template  IKELBD   helm template with every values file: each object valid
#                                    against the Kubernetes schemas, the ikelb assertions of
#                                    check_manifest.mjs, and the rendered config accepted by
#                                    `ikelbd --check`; a corrupted manifest must fail
#   chart_test.sh manifest  IKELBD   deploy/kubernetes/ikelb.yaml is `helm template` output
#   chart_test.sh podman-args VALUES CONFIGMAP_DIR OUT.json
#                                    the chart rendered with VALUES, as podman arguments
#                                    (podman_args.mjs; for the container test)
#
# helm and the node modules come from tests/deploy/tools.sh (cache: IKELB_TOOLS_DIR or
# build/deploy-tools).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chart=$root/deploy/helm/ikelb
mode=${1:?usage: chart_test.sh lint|template|manifest IKELBD}
ikelbd=${2:?usage: chart_test.sh lint|template|manifest IKELBD}
if [ "$mode" = podman-args ]; then
  values=$2 configmap_dir=${3:?CONFIGMAP_DIR} podman_out=${4:?OUT.json}
fi
tools=$("$here/tools.sh" "${IKELB_TOOLS_DIR:-$root/build/deploy-tools}")
helm=$tools/bin/helm
export IKELB_NODE_MODULES=$tools/node_modules
# helm keeps caches and config under HOME/XDG dirs: keep them in a temp dir.
work=$(mktemp -d /tmp/ikelb-chart-test-$$-XXXXXX)
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME=$work/cache HELM_CONFIG_HOME=$work/config HELM_DATA_HOME=$work/data

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

# name | values file ("" = defaults) | expectations for check_manifest.mjs
cases=(
  "default||{\"privileged\":false,\"bpffs\":\"/sys/fs/bpf\",\"pin_dir\":\"/sys/fs/bpf/ikelb\",\"socket_dir\":\"/run/ikelb\",\"health_port\":9714,\"teardown_on_stop\":false,\"checksum\":true}"
  "privileged|$chart/ci/privileged-values.yaml|{\"privileged\":true,\"bpffs\":\"/sys/fs/bpf\",\"pin_dir\":\"/sys/fs/bpf/ikelb\",\"socket_dir\":\"/run/ikelb\",\"health_port\":9714,\"teardown_on_stop\":false,\"checksum\":false}"
  "ipv6-vip|$chart/ci/ipv6-vip-values.yaml|{\"privileged\":false,\"bpffs\":\"/sys/fs/bpf\",\"pin_dir\":\"/sys/fs/bpf/ikelb\",\"socket_dir\":\"/run/ikelb\",\"health_port\":9714,\"teardown_on_stop\":false,\"checksum\":true}"
  "custom-bpffs|$chart/ci/custom-bpffs-values.yaml|{\"privileged\":false,\"bpffs\":\"/run/bpffs\",\"pin_dir\":\"/run/bpffs/ikelb-edge\",\"socket_dir\":\"/var/run/ikelb-edge\",\"health_port\":19714,\"teardown_on_stop\":true,\"checksum\":true}"
)
# Every values file of ci/ has a case (a new one must get its expectations).
for f in "$chart"/ci/*.yaml; do
  printf '%s\n' "${cases[@]}" | grep -qF "|$f|" || fail "no test case for $f"
done

render() {  # render NAME VALUES OUT
  local args=(template ikelb "$chart" --namespace kube-system)
  [ -n "$2" ] && args+=(-f "$2")
  "$helm" "${args[@]}" > "$3"
}

case $mode in
lint)
  for c in "${cases[@]}"; do
    IFS='|' read -r name values _ <<< "$c"
    args=(lint --strict "$chart")
    [ -n "$values" ] && args+=(-f "$values")
    out=$("$helm" "${args[@]}" 2>&1) || fail "helm lint ($name): $out"
    echo "lint $name: ok"
  done
  for bad in "$here"/bad-values/*.yaml; do
    want=$(sed -n 's/^# expect: //p' "$bad")
    if out=$("$helm" lint --strict "$chart" -f "$bad" 2>&1); then
      fail "helm lint accepted $(basename "$bad")"
    elif ! grep -qF -- "$want" <<< "$out"; then
      fail "helm lint rejected $(basename "$bad") without \"$want\": $out"
    else
      echo "lint $(basename "$bad"): rejected as expected ($want)"
    fi
  done
  ;;
template)
  for c in "${cases[@]}"; do
    IFS='|' read -r name values expect <<< "$c"
    render "$name" "$values" "$work/$name.yaml" || { fail "helm template ($name)"; continue; }
    printf '%s' "$expect" > "$work/$name.expect.json"
    node "$here/check_manifest.mjs" "$work/$name.yaml" "$work/$name.expect.json" \
      "$work/$name.ikelb.json" || fail "check_manifest ($name)"
    out=$("$ikelbd" --config "$work/$name.ikelb.json" --check 2>&1) ||
      fail "ikelbd --check rejected the config rendered for $name: $out"
    echo "config $name: $out"
  done
  # Negative control: the checks must catch a broken manifest.
  sed 's/hostNetwork: true/hostNetwork: "true"/; s/maxSurge: 0/maxSurge: 1/' \
    "$work/default.yaml" > "$work/broken.yaml"
  sed -i 's|            - name: config|            - name: config\n              subPath: ikelb.json|' \
    "$work/broken.yaml"
  printf '%s' "$(IFS='|' read -r _ _ e <<< "${cases[0]}"; echo "$e")" > "$work/broken.expect.json"
  if out=$(node "$here/check_manifest.mjs" "$work/broken.yaml" "$work/broken.expect.json" \
             "$work/broken.ikelb.json" 2>&1); then
    fail "check_manifest accepted a broken manifest"
  else
    for want in "hostNetwork must be boolean" "updateStrategy" "no subPath"; do
      grep -qF "$want" <<< "$out" || fail "check_manifest missed \"$want\" in: $out"
    done
    echo "broken manifest: rejected as expected"
  fi
  ;;
podman-args)
  render test "$values" "$work/test.yaml"
  node "$here/podman_args.mjs" "$work/test.yaml" "$configmap_dir" "$podman_out"
  ;;
manifest)
  render default "" "$work/rendered.yaml"
  if ! diff -u "$root/deploy/kubernetes/ikelb.yaml" "$work/rendered.yaml"; then
    fail "deploy/kubernetes/ikelb.yaml differs from helm template (regenerate: deploy/kubernetes/render.sh)"
  else
    echo "deploy/kubernetes/ikelb.yaml is the helm template output"
  fi
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac
exit $failed
