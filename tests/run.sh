#!/bin/bash
# The test command (README): installs what the tests need, builds, starts the
# loopback registry fixtures and runs the whole suite, unit and end-to-end.
# Run as root on Debian 12. Idempotent: a second run skips the image builds.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "tests/run.sh: run as root (the end-to-end tests build namespaces, mounts and cgroups)" >&2; exit 1; }

bash tests/install-deps.sh
bash tests/fixtures/registry.sh

export PATH="${HOME:-/root}/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
