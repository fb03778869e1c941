#!/usr/bin/env bash
# ballast's main job on its built-in default: build the Go and the Rust sample service
# images (real binaries, compiled here), push them to a local registry on 127.0.0.1
# and inspect both. No internet needed beyond apt for missing packages.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages
cargo build --release --locked --quiet --bin ballast --example sample_images
work=$(mktemp -d)
trap 'kill "${REGISTRY_PID:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_registry "$work/registry"
target=${CARGO_TARGET_DIR:-target}
"$target/release/examples/sample_images" --push "$REGISTRY_HOST" --layout "$target/ballast-demo"
format=${FORMAT:-table}
for image in samples/hello-go:1.0 samples/hello-rs:1.0; do
  echo "== ballast inspect $REGISTRY_HOST/$image"
  "$target/release/ballast" inspect "$REGISTRY_HOST/$image" --format "$format"
done
