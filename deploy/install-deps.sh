#!/usr/bin/env bash
# Installs the Debian packages in deploy/packages.txt that are not installed yet.
# Usage (as root): deploy/install-deps.sh
set -euo pipefail
cd "$(dirname "$0")"

mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' packages.txt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
# Debian starts a Prometheus server on :9090 when the package is installed; ikelb's tests run
# their own. Stop the one this script brought in, not one the machine already had.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
   systemctl is-enabled prometheus >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
  echo "install-deps: disabled the prometheus service Debian started (tests run their own)"
fi
# The deploy tests install helm and the Kubernetes schema validators with npm. Machines of this
# kind come with Node.js and npm (which conflict with Debian's npm package); bring Debian's only
# where there is no npm at all.
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends nodejs npm
fi
