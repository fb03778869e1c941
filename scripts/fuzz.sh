#!/usr/bin/env bash
# Runs every cargo-fuzz target (or those in TARGETS) for a while (SECONDS_PER_TARGET,
# default 120), each with
# a corpus seeded from real material built here: the Go, Rust and C samples and the
# hand-laid Go build-info blobs (analyze), the Go samples' .gopclntab sections (pclntab), the sample images' manifests, configs and
# layers (manifest, layer, rebuild), small layouts as tars (save_stream), registry answers (registry_response), gzip layers' first 64 KiB (gzip_level), references (reference), the built-in tables (pricing).
# Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_TARGET:-120}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
target=${CARGO_TARGET_DIR:-target}
corpus=fuzz/corpus
mkdir -p "$corpus"/{analyze,pclntab,reference,manifest,layer,pricing,gzip_level,rebuild,save_stream,registry_response}

for source in fuzz/seeds/*.c; do
  name=$(basename "$source" .c)
  gcc -O1 -o "$corpus/analyze/$name" "$source" 2>/dev/null || true
done
cargo run --quiet --release --example sample_images -- --layout "$target/ballast-demo" >/dev/null 2>&1
find "$target/ballast-samples" -maxdepth 1 -type f -name 'hello-*' ! -name '*.partial*' -exec cp {} "$corpus/analyze/" \;
for go in "$target"/ballast-samples/hello-go-*; do
  case "$go" in *.partial*) continue ;; esac
  objcopy -O binary --only-section=.gopclntab "$go" "$corpus/pclntab/$(basename "$go")" 2>/dev/null || true
done
for layout in "$target"/ballast-demo/*/; do
  for blob in "$layout"blobs/sha256/*; do
    size=$(stat -c %s "$blob")
    if [ "$size" -lt 65536 ]; then cp "$blob" "$corpus/manifest/"; fi
    if [ "$size" -lt 4000000 ]; then cp "$blob" "$corpus/layer/"; cp "$blob" "$corpus/rebuild/"; fi
    # gzip layers (magic 1f 8b) seed the level probe: their first 64 KiB, a
    # truncated stream as the probe sees one (whole megabytes would run at <1 exec/s).
    if [ "$(head -c 2 "$blob" | od -An -tx1 | tr -d ' ')" = "1f8b" ]; then
      head -c 65536 "$blob" >"$corpus/gzip_level/$(basename "$blob")"
    fi
  done
done
# docker save streams of one tiny image, in both formats, as an engine exports them.
python3 - "$corpus/save_stream" <<'PY'
import hashlib, io, json, sys, tarfile
out = sys.argv[1]
def tar_of(members):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    return data.getvalue()
layer = tar_of([("app/data", b"hello fuzz")])
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
config_hex = hashlib.sha256(config).hexdigest()
classic = tar_of([(config_hex + ".json", config), ("0123/layer.tar", layer),
                  ("manifest.json", json.dumps([{"Config": config_hex + ".json",
                   "RepoTags": ["app:1"], "Layers": ["0123/layer.tar"]}]).encode())])
open(out + "/classic.tar", "wb").write(classic)
layer_hex = hashlib.sha256(layer).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + config_hex, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + layer_hex, "size": len(layer)}]}).encode()
manifest_hex = hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + manifest_hex, "size": len(manifest)}]}).encode()
oci = tar_of([("blobs/sha256/" + layer_hex, layer), ("blobs/sha256/" + config_hex, config),
              ("blobs/sha256/" + manifest_hex, manifest), ("index.json", index),
              ("manifest.json", json.dumps([{"Config": "blobs/sha256/" + config_hex, "RepoTags": ["app:1"],
               "Layers": ["blobs/sha256/" + layer_hex]}]).encode()),
              ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')])
open(out + "/docker25.tar", "wb").write(oci)
PY
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
for name in ${TARGETS:-$(cargo fuzz list)}; do
  echo "== $name for ${seconds}s"
  extra=()
  [ "$name" = gzip_level ] && extra=(-max_len=65536)
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" "corpus/$name" -- -max_total_time="$seconds" -rss_limit_mb=2048 "${extra[@]}" 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|SUMMARY|ERROR|panicked" | tail -3
done
