#!/usr/bin/env bash
# Checks the cold-start model against reality, on this machine and a local registry:
# calibrate against the Go sample image, predict a full pull-and-walk of the 1 GiB
# benchmark image with the calibrated profile, then time `ballast inspect` doing it.
# Prints the prediction, the measurement and the gap. Rerunnable; not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages
target=${CARGO_TARGET_DIR:-target}
work=${BENCH_DIR:-$target/bench}
cargo build --release --locked --quiet --bin ballast --example sample_images --example bench_image --example push_layout
if [ ! -f "$work/layers.txt" ]; then
  mkdir -p "$work"
  "$target/release/examples/bench_image" "$work" >"$work/layers.txt"
fi
tmp=$(mktemp -d)
trap 'kill "${REGISTRY_PID:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
start_registry "$tmp/registry"
"$target/release/examples/sample_images" --push "$REGISTRY_HOST" 2>/dev/null
"$target/release/examples/push_layout" "$work/layout:bench" "$REGISTRY_HOST/bench/image:1.0" 2>/dev/null
ballast="$target/release/ballast"
"$ballast" calibrate "$REGISTRY_HOST/samples/hello-go:1.0" -o "$tmp/profile.toml" --name here
"$ballast" cost "$REGISTRY_HOST/bench/image:1.0" --profiles "$tmp/profile.toml" --profile here --format json >"$tmp/cost.json"
predicted=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["images"][0]["cold_start"]; p=c["parts"]; print(round(p["rtt_s"]+p["download_s"]+p["unpack_s"],2))' "$tmp/cost.json")
best=""
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$ballast" inspect "$REGISTRY_HOST/bench/image:1.0" --format json >/dev/null
  end=$(date +%s.%N)
  took=$(awk -v s="$start" -v e="$end" 'BEGIN{printf "%.2f", e-s}')
  if [ -z "$best" ] || awk -v a="$took" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$took; fi
done
echo "predicted pull-and-walk (round trips + download + unpack, no process start): ${predicted} s"
echo "measured ballast inspect (best of 3):                                     ${best} s"
awk -v p="$predicted" -v m="$best" 'BEGIN{printf "gap: %+.0f%% (model over measured)\n", (p-m)/m*100}'
echo "note: the model downloads, then unpacks one layer at a time (containerd's order); ballast overlaps"
echo "download and decompression and walks two layers at once, so for ballast the model is an upper bound."

