#!/usr/bin/env bash
# The whole test suite: installs what it needs (docker-registry, golang-go) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages
cargo test --locked "$@"
