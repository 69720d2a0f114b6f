#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need that cargo
# does not (the grpcio interop peer, from PyPI, into tests/interop/.venv), then runs
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/interop/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
