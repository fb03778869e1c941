#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (SECONDS_PER_TARGET, default 120), each with
# a corpus seeded from real material built here: the Go, Rust and C samples and the
# hand-laid Go build-info blobs (analyze), the sample images' manifests, configs and
# layers (manifest, layer, rebuild), small layouts as tars (save_stream), registry answers (registry_response), gzip layers' first 64 KiB (gzip_level), references (reference), the built-in tables (pricing).
# Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_TARGET:-120}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
target=${CARGO_TARGET_DIR:-target}
corpus=fuzz/corpus
mkdir -p "$corpus"/{analyze,reference,manifest,layer,pricing,gzip_level,rebuild,save_stream,registry_response}

for source in fuzz/seeds/*.c; do
  name=$(basename "$source" .c)
  gcc -O1 -o "$corpus/analyze/$name" "$source" 2>/dev/null || true
done
cargo run --quiet --release --example sample_images -- --layout "$target/ballast-demo" >/dev/null 2>&1
find "$target/ballast-samples" -maxdepth 1 -type f -name 'hello-*' ! -name '*.partial*' -exec cp {} "$corpus/analyze/" \;
for layout in "$target"/ballast-demo/*/; do
  for blob in "$layout"blobs/sha256/*; do
    size=$(stat -c %s "$blob")
    if [ "$size" -lt 65536 ]; then cp "$blob" "$corpus/manifest/"; fi
    if [ "$size" -lt 4000000 ]; then cp "$blob" "$corpus/layer/" "$corpus/rebuild/"; fi
    # gzip layers (magic 1f 8b) seed the level probe: their first 64 KiB, a
    # truncated stream as the probe sees one (whole megabytes would run at <1 exec/s).
    if [ "$(head -c 2 "$blob" | od -An -tx1 | tr -d ' ')" = "1f8b" ]; then
      head -c 65536 "$blob" >"$corpus/gzip_level/$(basename "$blob")"
    fi
  done
  # A layout as a tar is what an oci-archive pipe delivers.
  if [ "$(du -sb "$layout" | cut -f1)" -lt 4000000 ]; then
    tar -C "$layout" -cf "$corpus/save_stream/$(basename "$layout").tar" .
  fi
done
# Registry answers as the distribution registry gives them: a bearer challenge, a
# manifest, an error envelope.
printf 'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="http://127.0.0.1:1/token",service="r"\r\nContent-Length: 0\r\n\r\n' >"$corpus/registry_response/challenge"
printf 'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 71\r\n\r\n{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}\n' >"$corpus/registry_response/unknown"
for layout in "$target"/ballast-demo/*/; do
  for blob in "$layout"blobs/sha256/*; do
    if [ "$(stat -c %s "$blob")" -lt 4096 ] && head -c 1 "$blob" | grep -q '{'; then
      { printf 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %s\r\n\r\n' "$(stat -c %s "$blob")"; cat "$blob"; } >"$corpus/registry_response/$(basename "$blob")"
    fi
  done
done
printf '%s' 'alpine' >"$corpus/reference/a"
printf '%s' 'ghcr.io/org/svc:1.4' >"$corpus/reference/b"
printf '%s' 'localhost:5000/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' >"$corpus/reference/c"
printf '%s' 'oci:/tmp/layout:v1' >"$corpus/reference/d"
printf '%s' 'docker-archive:app.tar:docker.io/library/app:1.0' >"$corpus/reference/e"
cp src/cost/pricing.toml src/cost/profiles.toml "$corpus/pricing/"

cd fuzz
for name in $(cargo fuzz list); do
  echo "== $name for ${seconds}s"
  extra=()
  [ "$name" = gzip_level ] && extra=(-max_len=65536)
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" "corpus/$name" -- -max_total_time="$seconds" -rss_limit_mb=2048 "${extra[@]}" 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|SUMMARY|ERROR|panicked" | tail -3
done
