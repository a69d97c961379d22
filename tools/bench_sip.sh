#!/usr/bin/env bash
# SIP load benchmark for Switchboard (not a test).
#
#   tools/bench_sip.sh [--quick] [--rates "200 500"] [--reg-rates "500 1000"]
#                      [--step SECONDS] [--no-build]
#
# --no-build uses the existing binary ($CARGO_TARGET_DIR or target/,
# release/switchboard) instead of running `cargo build --release` first.
#
# Calls: a SIPp UAS registers as 1001 and answers; a SIPp UAC, seen as the
# demo trunk, calls sip:1001@switchboard (INVITE-100-180-200-ACK-BYE-200 on
# both legs of the B2BUA, no hold time). The offered rate is ramped; for each
# step it prints the calls that succeeded and failed, the caller's response
# time (INVITE sent -> 200 received) percentiles, and Switchboard's CPU time
# (utime+stime from /proc/PID/stat) per successful call.
#
# Registrations: REGISTERs from users 1001-1010 (-inf), each answered 401 and
# then, authenticated with digest, 200; reports the rate achieved, failures
# and Switchboard's CPU per successful REGISTER.
#
# Switchboard runs on CPU 1 (taskset -c 1), SIPp on CPU 0. Loopback only;
# every SIPp run is bounded by -m and -timeout; everything started here is
# stopped by its PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIPP_DIR="$ROOT/tools/sipp"
QUICK=0
BUILD=1
RATES=""
REG_RATES=""
STEP=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rates) RATES="$2"; shift ;;
    --reg-rates) REG_RATES="$2"; shift ;;
    --step) STEP="$2"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $QUICK -eq 1 ]]; then
  RATES=${RATES:-"200 1000"}
  REG_RATES=${REG_RATES:-"500 2000"}
  STEP=${STEP:-3}
else
  RATES=${RATES:-"200 500 1000 1500 2000"}
  REG_RATES=${REG_RATES:-"500 1000 2000 4000"}
  STEP=${STEP:-10}
fi

for tool in sipp taskset ss; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (tools/setup.sh installs sipp)" >&2; exit 1; }
done
if [[ $(nproc) -lt 2 ]]; then
  echo "bench: needs 2 CPUs (Switchboard on CPU 1, SIPp on CPU 0)" >&2
  exit 1
fi

if [[ $BUILD -eq 1 ]]; then
  echo "bench: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchboard"
[[ -x $BIN ]] || { echo "bench: no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP_WORK:-0} -eq 1 ]]; then
    echo "bench: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# A loopback port with nothing bound on it (UDP or TCP), not used yet here.
USED_PORTS=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 30000))
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
# The first of 4 free UDP ports (SIPp's -mp binds port and port+2).
free_media_port() {
  local p i k ok
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM % 15000) * 2))
    ok=1
    for k in 0 1 2 3; do
      if [[ $USED_PORTS == *" $((p + k)) "* || -n $(ss -Hlnu "sport = :$((p + k))") ]]; then ok=0; fi
    done
    if [[ $ok -eq 1 ]]; then
      USED_PORTS+="$p $((p + 1)) $((p + 2)) $((p + 3)) "
      echo "$p"
      return 0
    fi
  done
  echo "bench: no free media ports" >&2
  return 1
}

http_get() { # port path -> body; fails if not 200
  local port=$1 path=$2 status
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
  local answer
  answer=$(timeout 5 cat <&3) || true
  exec 3<&- 3>&-
  status=$(printf '%s' "$answer" | head -1 | awk '{print $2}')
  [[ $status == 200 ]] || return 1
  printf '%s' "$answer" | sed '1,/^\r\{0,1\}$/d'
}

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
TICK=$(getconf CLK_TCK)

stat_col() { # file column -> value from the last row of a SIPp stat CSV
  awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
                         NF > 1 { v = $c } END { print (v == "" ? 0 : v) + 0 }' "$1"
}

percentiles() { # SIPp rtt CSV -> "p50 p90 p99 max" in ms (SIPp measures whole ms)
  local f=$1
  if [[ ! -s $f ]] || [[ $(wc -l <"$f") -lt 2 ]]; then echo "- - - -"; return; fi
  tail -n +2 "$f" | awk -F';' '$3 == 1 { print $2 }' | sort -n | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "- - - -"; exit }
      n = NR
      i50 = int(0.50 * n + 0.999); if (i50 < 1) i50 = 1
      i90 = int(0.90 * n + 0.999); if (i90 < 1) i90 = 1
      i99 = int(0.99 * n + 0.999); if (i99 < 1) i99 = 1
      print v[i50], v[i90], v[i99], v[n]
    }'
}

SIP_PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$WORK/data"
RUST_LOG=warn taskset -c 1 "$BIN" run \
  --profile "$ROOT/sip-profiles/default.yaml" --flows "$ROOT/ivr-flows" --data "$WORK/data" \
  --sip "127.0.0.1:$SIP_PORT" --http "127.0.0.1:$HTTP_PORT" \
  >"$WORK/switchboard.stdout" 2>"$WORK/switchboard.stderr" &
SW=$!
PIDS+=("$SW")
for ((i = 0; i < 100; i++)); do
  http_get "$HTTP_PORT" /api/v1/health >/dev/null 2>&1 && break
  kill -0 "$SW" 2>/dev/null || { echo "bench: switchboard exited:" >&2; cat "$WORK/switchboard.stderr" >&2; exit 1; }
  sleep 0.1
done
http_get "$HTTP_PORT" /api/v1/health >/dev/null || { echo "bench: switchboard not healthy after 10 s" >&2; exit 1; }

SIPP_COMMON=(-i 127.0.0.1 -mi 127.0.0.1 -nostdin -timeout_error -buff_size 1048576)

# ---------------------------------------------------------------- callee
UAS_PORT=$(free_port)
TOTAL_S=0
for r in $RATES; do TOTAL_S=$((TOTAL_S + STEP + 15)); done
mkdir -p "$WORK/uas"
(cd "$WORK/uas" && exec taskset -c 0 sipp -sf "$SIPP_DIR/uas_answer.xml" "${SIPP_COMMON[@]}" \
  -p "$UAS_PORT" -mp "$(free_media_port)" -timeout "$((TOTAL_S + 30))s" \
  -trace_stat -stf "$WORK/uas/stat.csv" >/dev/null 2>"$WORK/uas/stderr") &
UAS=$!
PIDS+=("$UAS")
for ((i = 0; i < 100; i++)); do
  [[ -n $(ss -Hlnu "sport = :$UAS_PORT") ]] && break
  sleep 0.05
done

printf 'SEQUENTIAL\n1001;127.0.0.1:%s;[authentication username=1001 password=secret1001]\n' "$UAS_PORT" >"$WORK/uas.csv"
(cd "$WORK" && sipp -sf "$SIPP_DIR/register.xml" "${SIPP_COMMON[@]}" -p "$(free_port)" -mp "$(free_media_port)" \
  -inf "$WORK/uas.csv" -auth_uri switchboard.local -m 1 -timeout 10s "127.0.0.1:$SIP_PORT" \
  >/dev/null 2>"$WORK/register.stderr") || { echo "bench: registering the callee failed" >&2; cat "$WORK/register.stderr" >&2; exit 1; }

echo
echo "Calls through the B2BUA (UAC -> switchboard -> UAS, no hold), ${STEP} s per step"
echo "switchboard on CPU 1, SIPp caller and callee on CPU 0; response time = INVITE -> 200 at the caller"
printf '%9s %10s %8s %7s %7s %7s %7s %7s %12s\n' offered/s achieved/s ok failed p50_ms p90_ms p99_ms max_ms cpu_ms/call
for rate in $RATES; do
  calls=$((rate * STEP))
  dir="$WORK/calls-$rate"
  mkdir -p "$dir"
  before=$(cpu_ticks "$SW")
  t0=$(date +%s.%N)
  (cd "$dir" && taskset -c 0 sipp -sf "$SIPP_DIR/uac_call.xml" "${SIPP_COMMON[@]}" \
    -p "$(free_port)" -mp "$(free_media_port)" -s 1001 -r "$rate" -m "$calls" -l $((rate * 2 > 200 ? rate * 2 : 200)) -d 0 \
    -timeout "$((STEP + 15))s" -trace_stat -stf "$dir/stat.csv" -trace_rtt -rtt_freq 200 \
    "127.0.0.1:$SIP_PORT" >/dev/null 2>"$dir/stderr") || true
  t1=$(date +%s.%N)
  after=$(cpu_ticks "$SW")
  ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
  failed=$(stat_col "$dir/stat.csv" "FailedCall(C)")
  read -r p50 p90 p99 pmax < <(percentiles "$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)")
  awk -v rate="$rate" -v ok="$ok" -v failed="$failed" -v t0="$t0" -v t1="$t1" \
      -v b="$before" -v a="$after" -v tick="$TICK" -v p50="$p50" -v p90="$p90" -v p99="$p99" -v pmax="$pmax" 'BEGIN {
    el = t1 - t0; if (el <= 0) el = 1
    cpu = (a - b) * 1000 / tick
    printf "%9d %10.0f %8d %7d %7s %7s %7s %7s %12s\n", rate, ok / el, ok, failed, p50, p90, p99, pmax,
      (ok > 0 ? sprintf("%.3f", cpu / ok) : "-")
  }'
  sleep 3 # let the callee's timewait drain
done

# ---------------------------------------------------------------- REGISTER
REG_CSV="$WORK/users.csv"
{
  echo SEQUENTIAL
  # Contacts need not listen: nobody calls them during this part.
  for u in $(seq 1001 1010); do
    echo "$u;127.0.0.1:$UAS_PORT;[authentication username=$u password=secret$u]"
  done
} >"$REG_CSV"

echo
echo "Digest REGISTERs (401 challenge, then authenticated 200), users 1001-1010, ${STEP} s per step"
printf '%9s %10s %8s %7s %7s %7s %13s\n' offered/s achieved/s ok failed p50_ms p99_ms cpu_us/REG
for rate in $REG_RATES; do
  regs=$((rate * STEP))
  dir="$WORK/reg-$rate"
  mkdir -p "$dir"
  before=$(cpu_ticks "$SW")
  t0=$(date +%s.%N)
  (cd "$dir" && taskset -c 0 sipp -sf "$SIPP_DIR/register.xml" "${SIPP_COMMON[@]}" \
    -p "$(free_port)" -mp "$(free_media_port)" -inf "$REG_CSV" -auth_uri switchboard.local \
    -default_behaviors all,-bye -r "$rate" -m "$regs" -l $((rate * 2 > 200 ? rate * 2 : 200)) \
    -timeout "$((STEP + 15))s" -trace_stat -stf "$dir/stat.csv" -trace_rtt -rtt_freq 200 \
    "127.0.0.1:$SIP_PORT" >/dev/null 2>"$dir/stderr") || true
  t1=$(date +%s.%N)
  after=$(cpu_ticks "$SW")
  ok=$(stat_col "$dir/stat.csv" "SuccessfulCall(C)")
  failed=$(stat_col "$dir/stat.csv" "FailedCall(C)")
  read -r p50 _p90 p99 _pmax < <(percentiles "$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)")
  awk -v rate="$rate" -v ok="$ok" -v failed="$failed" -v t0="$t0" -v t1="$t1" \
      -v b="$before" -v a="$after" -v tick="$TICK" -v p50="$p50" -v p99="$p99" 'BEGIN {
    el = t1 - t0; if (el <= 0) el = 1
    cpu = (a - b) * 1000000 / tick
    printf "%9d %10.0f %8d %7d %7s %7s %13s\n", rate, ok / el, ok, failed, p50, p99,
      (ok > 0 ? sprintf("%.1f", cpu / ok) : "-")
  }'
done

echo
if metrics=$(http_get "$HTTP_PORT" /metrics 2>/dev/null); then
  echo "switchboard metrics at the end:"
  printf '%s\n' "$metrics" | grep -E '^switchboard_(sip_parse_errors_total|calls_active|calls_answered_total|calls_failed_total|registrations_total|sip_rate_limited_total) ' || true
fi
echo
kill -0 "$SW" 2>/dev/null || { echo "bench: switchboard died during the run" >&2; tail -50 "$WORK/switchboard.stderr" >&2; exit 1; }
