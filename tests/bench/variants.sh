#!/usr/bin/env bash
# What each data-path change bought. Builds this tree's micro-benchmark and forwarding benchmark
# once per revision, each with that revision's ebpf/ (the data path) and lb/ (the agent code that
# fills the data path's maps) and everything else from this tree, then runs them alternately, round by round, so that every figure comes from the
# same session on the same machine.
#
# Usage (root, from anywhere): tests/bench/variants.sh [--quick] [--out FILE] LABEL=REV...
#   e.g. tests/bench/variants.sh before=549f2d3 devmap=5a1f5c6 clock=9cf4be2
# Prints a Markdown table (and writes it to FILE). Takes a few minutes per revision.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
rounds=7 repeat=1000000 packets=2000000 out=""
usage="usage: $0 [--quick] [--out FILE] LABEL=REV..."
variants=()
while (($#)); do
  case "$1" in
    --quick) rounds=2 repeat=300000 packets=300000 ;;
    --out)
      [[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
      out="$2"
      shift
      ;;
    *=*) variants+=("$1") ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
((${#variants[@]})) || { echo "$usage" >&2; exit 2; }

tmp="$(mktemp -d /tmp/ikelb-variants.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
  -DCMAKE_C_COMPILER_LAUNCHER=ccache)

labels=()
for v in "${variants[@]}"; do
  label="${v%%=*}" rev="${v#*=}"
  [[ "$label" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "variants.sh: bad label '$label'" >&2; exit 2; }
  git -C "$repo" rev-parse --verify -q "$rev^{commit}" >/dev/null ||
    { echo "variants.sh: no revision '$rev'" >&2; exit 2; }
  src="$tmp/$label"
  mkdir -p "$src"
  tar -C "$repo" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
  rm -rf "$src/ebpf" "$src/lb"
  git -C "$repo" archive "$rev" ebpf lb | tar -C "$src" -xf -
  echo "building $label ($rev)" >&2
  CCACHE_BASEDIR="$src" CCACHE_NOHASHDIR=1 cmake -S "$src" -B "$src/build" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >"$tmp/$label.log" 2>&1
  CCACHE_BASEDIR="$src" CCACHE_NOHASHDIR=1 cmake --build "$src/build" -j"$(nproc)" \
    --target ikelb_microbench ikelb_netbench >>"$tmp/$label.log" 2>&1 ||
    { tail -20 "$tmp/$label.log" >&2; exit 1; }
  labels+=("$label")
done

for ((r = 1; r <= rounds; r++)); do
  for label in "${labels[@]}"; do
    echo "round $r/$rounds: $label" >&2
    "$tmp/$label/build/tests/ikelb_microbench" --rounds 1 --repeat "$repeat" \
      >"$tmp/$label.micro.$r"
    "$tmp/$label/build/tests/ikelb_netbench" --rounds 1 --packets "$packets" --single-queue \
      >"$tmp/$label.net.$r" 2>>"$tmp/$label.netlog"
  done
done

{
  echo "Generated on $(date -u +%Y-%m-%d) by \`tests/bench/variants.sh ${variants[*]}\`."
  echo
  python3 - "$tmp" "$rounds" "${labels[@]}" <<'PY'

import functools, re, statistics, sys
tmp, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
micro_rows = [("hit, 1 client", "affinity hit, 1 client, stamped"),
              ("hit, 10,000 clients, new table", "affinity hit, 10,000 clients, new table"),
              ("hit, 10,000 clients, churned", "affinity hit, 10,000 clients, churned"),
              ("Maglev miss", "Maglev miss"),
              ("reverse", "reverse"),
              ("not for ikelb (UDP)", "non-VIP pass"),
              ("ESP-in-UDP hit, SPI learning on", "ESP-in-UDP hit, SPI learning on")]
live_rows = [("hit, 1 client", "ikelb hit, 1 client"),
             ("hit, 10,000 clients", "ikelb hit, 10,000 clients"),
             ("Maglev miss", "ikelb Maglev"),
             ("reverse", "ikelb reverse")]

@functools.cache
def micro(label, r):
    got = {}
    for line in open(f"{tmp}/{label}.micro.{r}"):
        m = re.match(r"(.+?)\s{2,}\d+\s+\d+-\d+\s+[\d.]+\s+(-?\d+) ns$", line.rstrip())
        if m: got[m.group(1)] = float(m.group(2))
    return got

@functools.cache
def live(label, r):
    """ikelb's own ns per packet over null, and hit / nftables, from one netbench round."""
    got = {}
    for line in open(f"{tmp}/{label}.net.{r}"):
        m = re.match(r"\s+(ikelb .+?)\s{2,}(-?[\d.]+) ns \(", line)
        if m: got[m.group(1)] = float(m.group(2))
        m = re.match(r"ikelb hit \(10,000 clients\) / nftables DNAT, per round: ([\d.]+)x", line)
        if m: got["nft"] = float(m.group(1))
    return got

def cell(values, fmt="%.0f"):
    if not values: return "-"
    med = statistics.median(values)
    return (fmt % med) + " (" + (fmt % min(values)) + "–" + (fmt % max(values)) + ")"

def find(d, prefix):
    return [v for k, v in d.items() if k.startswith(prefix)]

print(f"Each cell: median (min–max) over {rounds} alternating rounds, ns per packet (hit / "
      "nftables: a ratio). Micro: BPF_PROG_TEST_RUN, minus the harness's snapshot copy. Live: "
      "ikelb's own cost, 1/rate(ikelb) - 1/rate(null forwarder) of the same round.\n")
print("| figure | " + " | ".join(labels) + f" | {labels[-1]} / {labels[0]} |")
print("|---" * (len(labels) + 2) + "|")
rows = [(f"micro: {n}", lambda l, r, p=p: find(micro(l, r), p), "%.0f") for n, p in micro_rows]
rows += [(f"live: {n}", lambda l, r, p=p: find(live(l, r), p), "%.0f") for n, p in live_rows]
rows += [("live: hit (10,000 clients) / nftables", lambda l, r: [live(l, r)["nft"]]
          if "nft" in live(l, r) else [], "%.2f")]
for name, get, fmt in rows:
    cells, medians = [], []
    for label in labels:
        values = [v for r in range(1, rounds + 1) for v in get(label, r)]
        cells.append(cell(values, fmt))
        medians.append(statistics.median(values) if values else None)
    change = (f"x{medians[-1] / medians[0]:.2f}" if medians[0] and medians[-1] else "-")
    print(f"| {name} | " + " | ".join(cells) + f" | {change} |")
PY
} | tee ${out:+"$out"}
