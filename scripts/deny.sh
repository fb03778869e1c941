#!/usr/bin/env bash
# Licences, duplicate dependency versions and crate sources, with cargo-deny.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked --quiet cargo-deny
cargo deny --locked check licenses bans sources
