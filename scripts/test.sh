#!/usr/bin/env bash
# The whole test suite: installs what it needs (docker-registry, golang-go, chromium,
# mermaid from npm) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_packages "${TEST_PACKAGES[@]}"
ensure_mermaid
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! not root: the docker-daemon:/podman: tests cannot start dockerd or podman and are SKIPPED (CI runs as root) !!!" >&2
fi
cargo test --locked "$@"
