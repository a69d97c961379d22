#!/usr/bin/env bash
# Builds and runs Switchboard on its embedded defaults: sip-profiles/default.yaml, ivr-flows/,
# data in ./var, SIP on UDP+TCP 127.0.0.1:5060, HTTP on 127.0.0.1:8080.
# Extra arguments go to `switchboard run` (e.g. --sip 0.0.0.0:5060 --http 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
exec cargo run --release --quiet -- run "$@"
