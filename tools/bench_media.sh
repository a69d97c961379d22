#!/usr/bin/env bash
# Media benchmark for Switchboard (not a test): anchored RTP through bridged calls.
#
#   tools/bench_media.sh [--quick] [relay|transcode|both|floor] [--calls "100,400"]
#                        [--duration SECONDS] [--io auto|io_uring|epoll] [--no-build]
#                        [-- MEDIA-BENCH ARGS...]
#
# Builds switchboard and tools/media-bench in release (unless --no-build), starts
# a fresh switchboard per mode on CPU 1 (taskset -c 1) with a copy of the demo
# profile (RTP ports 30000-59999, rtp_timeout 300s, no trunk call cap) and runs
# media-bench on CPU 0. media-bench registers the demo users, places the calls as
# the demo trunk and answers them as the users (both ends of every call are its
# own), streams 20 ms RTP both ways on every call, and prints per step: calls up,
# packets sent/received, delivered %, Switchboard's CPU per relayed packet and %
# of one core, the generator's own CPU, and Switchboard's RSS per call.
#
# relay:     PCMU on both legs (packets relayed without decoding).
# transcode: PCMU on the caller leg, Opus on the callee leg (decode + encode).
# floor:     no Switchboard: tools/media-bench's relay-floor, a bare relay without
#            RTP logic, at the same call counts, three ways: epoll with recvfrom and
#            sendto, the same on connected sockets, and io_uring (multishot receive,
#            batched sends): what the system calls alone cost on this machine.
# --io: the profile's media.io (default auto: io_uring where the kernel has it), to
#        weigh the media thread's two I/O paths against each other.
# Default ramps: relay 100,400,800,1200,1600,2000 calls; transcode
# 25,50,100,125,150,200; 30 s window each. --quick: 50,200 calls (transcode 20,50),
# 10 s, relay only unless a mode is named.
#
# Loopback only; every phase of media-bench is bounded in time; the switchboard
# started here is stopped by its PID on exit. Set KEEP_WORK=1 to keep the work
# directory (profile, switchboard logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOL_DIR="$ROOT/tools/media-bench"
QUICK=0
BUILD=1
MODES=""
CALLS=""
DURATION=""
IO=auto
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    relay | transcode | floor) MODES="$1" ;;
    both) MODES="relay transcode" ;;
    --calls) CALLS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --io) IO="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) sed -n '2,/^set -e/{/^set -e/d;p}' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
MODES=${MODES:-relay}
if [[ $QUICK -eq 1 ]]; then
  DURATION=${DURATION:-10}
else
  DURATION=${DURATION:-30}
fi

for tool in taskset ss; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
if [[ $(nproc) -lt 2 ]]; then
  echo "bench: needs 2 CPUs (switchboard on CPU 1, media-bench on CPU 0)" >&2
  exit 1
fi

SW_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TOOL_TARGET="$TOOL_DIR/target"
if [[ $BUILD -eq 1 ]]; then
  echo "bench: cargo build --release (switchboard)" >&2
  (cd "$ROOT" && CARGO_TARGET_DIR="$SW_TARGET" cargo build --release --quiet)
  echo "bench: cargo build --release (media-bench)" >&2
  (cd "$TOOL_DIR" && CARGO_TARGET_DIR="$TOOL_TARGET" cargo build --release --quiet)
fi
BIN=${SWITCHBOARD_BIN:-$SW_TARGET/release/switchboard}
TOOL="$TOOL_TARGET/release/media-bench"
[[ -x $BIN ]] || { echo "bench: no switchboard binary at $BIN" >&2; exit 1; }
[[ -x $TOOL ]] || { echo "bench: no media-bench binary at $TOOL" >&2; exit 1; }

# Both processes need a descriptor per socket (switchboard: 2 per leg, 4 per call).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-media-bench.XXXXXX")
SW=""
cleanup() {
  if [[ -n $SW ]]; then
    kill "$SW" 2>/dev/null || true
    wait "$SW" 2>/dev/null || true
  fi
  if [[ ${KEEP_WORK:-0} -eq 1 ]]; then
    echo "bench: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# The demo profile with room for the load: a wide RTP range, a long RTP timeout
# (calls sit idle while the others are being set up) and no trunk call cap.
sed -e 's/^\( *max_calls:\).*/\1 100000/' \
  -e 's/^media:.*/media: { address: 127.0.0.1, rtp_ports: 30000-59999, codecs: [pcmu, pcma, opus], ptime: 20ms, rtp_timeout: 300s, io: '"$IO"' }/' \
  "$ROOT/sip-profiles/default.yaml" >"$WORK/profile.yaml"
grep -q 'rtp_ports: 30000-59999' "$WORK/profile.yaml" || { echo "bench: could not adapt the demo profile" >&2; exit 1; }
"$BIN" check --profile "$WORK/profile.yaml" --flows "$ROOT/ivr-flows" >/dev/null

USED_PORTS=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 10000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if [[ -z $(ss -Hlnu "sport = :$p") && -z $(ss -Hlnt "sport = :$p") ]]; then
      USED_PORTS+="$p "
      echo "$p"
      return 0
    fi
  done
  echo "bench: no free port" >&2
  return 1
}

healthy() {
  local answer
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  answer=$(timeout 5 cat <&3) || true
  exec 3<&- 3>&-
  [[ $answer == "HTTP/1.1 200"* ]]
}

start_switch() {
  SIP_PORT=$(free_port)
  HTTP_PORT=$(free_port)
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  RUST_LOG=warn taskset -c 1 "$BIN" run \
    --profile "$WORK/profile.yaml" --flows "$ROOT/ivr-flows" --data "$WORK/data" \
    --sip "127.0.0.1:$SIP_PORT" --http "127.0.0.1:$HTTP_PORT" \
    >"$WORK/switchboard-$1.stdout" 2>"$WORK/switchboard-$1.stderr" &
  SW=$!
  local i
  for ((i = 0; i < 100; i++)); do
    healthy "$HTTP_PORT" 2>/dev/null && return 0
    kill -0 "$SW" 2>/dev/null || { echo "bench: switchboard exited:" >&2; cat "$WORK/switchboard-$1.stderr" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: switchboard not healthy after 10 s" >&2
  exit 1
}

stop_switch() {
  kill "$SW" 2>/dev/null || true
  wait "$SW" 2>/dev/null || true
  SW=""
}

STATUS=0
if [[ $MODES == floor ]]; then
  ramp=${CALLS:-800,1200,1600}
  "$TOOL_TARGET/release/relay-floor" --calls "$ramp" --duration "$DURATION"
  "$TOOL_TARGET/release/relay-floor" --calls "$ramp" --duration "$DURATION" --connected
  "$TOOL_TARGET/release/relay-floor" --calls "$ramp" --duration "$DURATION" --uring
  exit 0
fi
for mode in $MODES; do
  if [[ -n $CALLS ]]; then
    ramp=$CALLS
  elif [[ $mode == relay ]]; then
    if [[ $QUICK -eq 1 ]]; then ramp=50,200; else ramp=100,400,800,1200,1600,2000; fi
  else
    if [[ $QUICK -eq 1 ]]; then ramp=20,50; else ramp=25,50,100,125,150,200; fi
  fi
  start_switch "$mode"
  echo
  echo "== $mode: calls $ramp, ${DURATION} s per step; switchboard (pid $SW) on CPU 1, media-bench on CPU 0"
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  rc=0
  taskset -c 0 "$TOOL" --pid "$SW" --sip "127.0.0.1:$SIP_PORT" --http "127.0.0.1:$HTTP_PORT" \
    --mode "$mode" --calls "$ramp" --duration "$DURATION" "${EXTRA[@]}" || rc=$?
  if ! kill -0 "$SW" 2>/dev/null; then
    echo "bench: switchboard died; the end of its log:" >&2
    tail -n 30 "$WORK/switchboard-$mode.stderr" >&2
    SW=""
    STATUS=1
    continue
  fi
  if grep -qiE 'panic|error' "$WORK/switchboard-$mode.stderr"; then
    echo "bench: switchboard logged errors (first 10 lines):"
    grep -iE 'panic|error' "$WORK/switchboard-$mode.stderr" | head -n 10
  fi
  stop_switch
  [[ $rc -eq 0 ]] || STATUS=$rc
done
exit "$STATUS"
