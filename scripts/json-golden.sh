#!/usr/bin/env bash
# Writes the JSON (and the Markdown report) of every command on the sample images to
# DIR, with the one volatile figure (decompression timings) removed, so that two trees
# can be compared byte for byte: `scripts/json-golden.sh /tmp/before` at one commit,
# `scripts/json-golden.sh /tmp/after` at another, then `diff -r /tmp/before /tmp/after`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/json-golden.sh DIR}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-target}
cargo build --locked --quiet --bin ballast --example sample_images --example dogfood_image
layouts="$target/ballast-golden"
"$target/debug/examples/sample_images" --layout "$layouts" >/dev/null
# The dogfood recipe around a static Go sample (ballast's own binary changes with
# every edit, so it cannot be the fixture of a before/after check).
static=$(ls "$target"/ballast-samples/hello-go-cgo-off-* 2>/dev/null | head -1)
[ -n "$static" ] || { echo "no static Go sample under $target/ballast-samples: run the test suite once" >&2; exit 2; }
"$target/debug/examples/dogfood_image" "$static" "$layouts/dogfood" >/dev/null
ballast="$target/debug/ballast"
go="oci:$layouts/hello-go:1.0"
rs="oci:$layouts/hello-rs:1.0"
dog="oci:$layouts/dogfood"
# Timings and the dev binary's own bytes vary from build to build.
volatile() { jq 'walk(if type == "string" and startswith("decompression on this machine") then "<timing>" else . end)'; }
for name in go rs dog; do
  ref=${!name}
  "$ballast" inspect "$ref" --format json --top 20 >"$out/inspect-$name.json"
  "$ballast" inspect "$ref" --format markdown >"$out/inspect-$name.md"
  "$ballast" inspect "$ref" --format table >"$out/inspect-$name.txt"
  "$ballast" advise "$ref" --format json | volatile >"$out/advise-$name.json"
  "$ballast" advise "$ref" --format markdown --no-zstd >"$out/advise-$name.md"
  "$ballast" cost "$ref" --format json >"$out/cost-$name.json"
done
"$ballast" compare "$go" "$rs" --format json >"$out/compare.json"
"$ballast" compare "$go" "$rs" --format markdown >"$out/compare.md"
"$ballast" compare "$go" "$rs" --format table >"$out/compare.txt"
"$ballast" cost "$go" "$rs" --format json --nodes 20 >"$out/cost-set.json"
"$ballast" cost "$go" "$rs" --format markdown >"$out/cost-set.md"
"$ballast" diff "$go" "$rs" --format json >"$out/diff.json"
"$ballast" diff "$go" "$rs" --format markdown >"$out/diff.md"
"$ballast" report "$go" "$rs" --stable >"$out/report.md"
"$ballast" inspect "$go" --format json >"$out/baseline.json"
for format in json markdown github; do
  "$ballast" gate "$rs" --baseline "$go" --max-growth 5% --max-size 100MB --max-cold-start 30 \
    --max-monthly-cost 100 --no-unstripped --format "$format" >"$out/gate-$format.out" || echo "exit $?" >>"$out/gate-$format.out"
done
"$ballast" gate "$rs" --baseline "$out/baseline.json" --max-growth 10MB --min-efficiency 0.5 --format json \
  >"$out/gate-file.json" || echo "exit $?" >>"$out/gate-file.json"
ls "$out" | wc -l
