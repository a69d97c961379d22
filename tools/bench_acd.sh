#!/usr/bin/env bash
# ACD benchmark (not a test): routing decisions per second and their latency with 1,000
# agents, 10,000 waiting callers and 50 queues with skills (target: under 50 µs per
# decision), and the wait estimate's mean absolute error beside Asterisk's moving
# average at 70/85/95% occupancy with exponential and low-variance handle times (target:
# at least 30% lower at 85%).
#
#   tools/bench_acd.sh [--no-build] [switchboard acd bench options...]
#     e.g. --agents 1000 --callers 10000 --queues 50 --cycles 20000 --calls 20000
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=1
if [[ "${1:-}" == "--no-build" ]]; then BUILD=0; shift; fi
if [[ $BUILD -eq 1 ]]; then
  tools/setup.sh
  cargo build --release --quiet
fi
PIN=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then PIN=(taskset -c 1); fi
exec "${PIN[@]}" target/release/switchboard acd bench "$@"
