#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (SECONDS_PER_TARGET, default 120), with a
# corpus seeded from real binaries built here: the Go, Rust and C samples and the
# hand-laid Go build-info blobs in fuzz/seeds/*.c. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_TARGET:-120}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
corpus=fuzz/corpus/analyze
mkdir -p "$corpus"
for source in fuzz/seeds/*.c; do
  name=$(basename "$source" .c)
  if [ "$name" = ptr-nolibc ]; then
    gcc -m32 -nostdlib -static -o "$corpus/$name-32" "$source" -Wl,-e,main 2>/dev/null || true
  fi
  gcc -O1 -o "$corpus/$name" "$source" 2>/dev/null || true
done
# The real samples, once each (the test suite builds and caches them).
cargo run --quiet --release --example sample_images -- >/dev/null 2>&1 || true
find "${CARGO_TARGET_DIR:-target}/ballast-samples" -maxdepth 1 -type f -name 'hello-*' ! -name '*.partial*' -exec cp {} "$corpus/" \; 2>/dev/null || true
cd fuzz
for target in $(cargo fuzz list); do
  echo "== $target for ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "../$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -5
done
