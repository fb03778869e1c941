#!/usr/bin/env bash
# Regenerates docs/example-report.md from the sample Go and Rust images.
#   scripts/example-report.sh          rewrite docs/example-report.md
#   scripts/example-report.sh --check  fail when the committed report is stale
#
# The images are built from testdata/ with this machine's go and rustc and its Debian
# files, written as OCI layouts under target/ballast-demo; the report names them by
# those relative paths, so it carries no local path and no timestamp. Its figures
# follow the toolchains and the base files (apt's package lists change daily), so
# --check compares the report's shape (every line, with digits and hex masked): a
# section, table, suggestion or wording the code no longer produces fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages

target="${CARGO_TARGET_DIR:-target}"
layouts=target/ballast-demo
out=docs/example-report.md
# The dev build the test suite just made (dependencies optimised): no second,
# release build in CI for a report whose figures do not depend on it.
cargo build --quiet --locked --bin ballast --example sample_images
"$target/debug/examples/sample_images" --layout "$layouts" 2>/dev/null
images=("oci:$layouts/hello-go:1.0" "oci:$layouts/hello-rs:1.0")

if [ "${1:-}" = --check ]; then
  fresh=$(mktemp)
  trap 'rm -f "$fresh"' EXIT
  "$target/debug/ballast" report --stable "${images[@]}" -o "$fresh" 2>/dev/null
  mask() { sed -E 's/[0-9a-f]{12,}/<hex>/g; s/[0-9]+/#/g' "$1"; }
  if ! diff <(mask "$out") <(mask "$fresh") >/dev/null; then
    echo "docs/example-report.md is stale: run scripts/example-report.sh" >&2
    diff <(mask "$out") <(mask "$fresh") | head -20 >&2
    exit 1
  fi
  echo "docs/example-report.md is current"
else
  mkdir -p docs
  "$target/debug/ballast" report --stable "${images[@]}" -o "$out"
fi
