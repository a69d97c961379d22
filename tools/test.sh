#!/usr/bin/env bash
# Runs the whole test suite: system packages first (tools/setup.sh), then
# `cargo test --release`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
status=0
cargo test --release "$@" || status=$?
exit "$status"
