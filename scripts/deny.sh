#!/usr/bin/env bash
# Licences, duplicate dependency versions and crate sources, with cargo-deny.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked --quiet cargo-deny
cargo deny --locked check licenses bans sources
# The RustSec advisory database is a git repository on GitHub. Where it can be
# reached, advisories are checked and fail the run like any other check; where it
# cannot (these build machines reach only the package registries), say so loudly
# rather than pass silently.
if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny --locked check advisories
else
    echo "deny.sh: advisories NOT checked: github.com/rustsec/advisory-db is unreachable from this machine" >&2
fi
