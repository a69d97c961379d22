#!/usr/bin/env bash
# Runs the whole test suite: system packages first (tools/setup.sh), then
# `cargo test --release --no-fail-fast` (every test target runs even when one
# fails; the exit status is still non-zero). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
status=0
cargo test --release --no-fail-fast "$@" || status=$?
exit "$status"
