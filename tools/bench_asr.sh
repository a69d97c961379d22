#!/usr/bin/env bash
# Speech recognition benchmark for Switchboard (not a test): accuracy and speed of the
# embedded recognizer on a corpus of caller commands rendered with espeak-ng.
#
#   tools/bench_asr.sh [--corpus DIR] [--render] [--quick] [--no-build]
#                      [telephone|wideband|both]
#
# Renders (once, or again with --render) a corpus into DIR (default target/asr-corpus):
# an 8-choice menu (menu.tsv: billing, technical support, sales, agent, call me back,
# order status, cancel, repeat, with synonyms) and what callers say to it (commands in
# several wordings with carrier phrases, "press two", and sentences that are not commands),
# each in voices en-us, en-gb, en-us+f3, en-us+m3, en-gb+f2, en-us+m7 at 140-175 words per
# minute (--quick: two voices). Telephone copies go through G.711 u-law and a 300-3400 Hz
# band-pass (sox), then back to 16-bit PCM at 8 kHz (tel/); wideband copies are 16 kHz
# (wide/). manifest.tsv lists file, expected choice ("-" = must be rejected), voice, speed
# and text.
#
# Then runs `switchboard speech bench --corpus DIR [--wideband]` (built in release unless
# --no-build; set BENCH_CMD to run another binary with the same arguments), which pushes
# every recording through a real session (endpointing, resampling, decoding, the IVR's
# choice matcher) on CPU 1 and prints accuracy, confidence, real-time factor (CPU) and
# concurrent recognitions per core, for telephone and wideband audio.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS="$ROOT/target/asr-corpus"
RENDER=0
QUICK=0
BUILD=1
MODES="telephone wideband"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --corpus) CORPUS="$2"; shift ;;
    --render) RENDER=1 ;;
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    telephone | wideband) MODES="$1" ;;
    both) MODES="telephone wideband" ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || {
    echo "bench_asr: $tool is missing (tools/setup.sh installs it)" >&2
    exit 1
  }
done

# The menu: name, DTMF key, phrases (the grammar a flow would declare).
MENU=$(cat <<'EOF'
billing	1	billing|bill|pay my bill|payment|invoice
technical_support	2	technical support|tech support|support|it's not working|my internet is down|technical problem
sales	3	sales|buy|new service|upgrade|sign up
agent	0	agent|representative|operator|a person|speak to someone|human
call_me_back	4	call me back|callback|call back|return my call
order_status	5	order status|where is my order|track my order|my order|delivery
cancel	6	cancel|cancel my service|cancellation|close my account
repeat	9	repeat|repeat that|say that again|start over|main menu
EOF
)

# What callers say: expected choice ("-": not a command) and text.
UTTERANCES=$(cat <<'EOF'
billing	billing
billing	bill
billing	pay my bill
billing	I want to pay my bill
billing	billing please
billing	I have a question about my bill
billing	invoice
technical_support	technical support
technical_support	tech support
technical_support	support
technical_support	my internet is down
technical_support	it's not working
technical_support	I need technical support
technical_support	press two
sales	sales
sales	I want to buy
sales	sales please
sales	upgrade
sales	new service
sales	I'd like to sign up
agent	agent
agent	representative
agent	I want to speak to an agent
agent	operator
agent	talk to a person
agent	speak to someone
call_me_back	call me back
call_me_back	please call me back
call_me_back	callback
call_me_back	can you call me back
order_status	order status
order_status	where is my order
order_status	track my order
order_status	check my order status
cancel	cancel
cancel	cancel my service
cancel	I want to cancel
cancel	close my account
repeat	repeat
repeat	repeat that
repeat	say that again
repeat	main menu
repeat	start over
-	what is the weather like today
-	hello is anybody there
-	I like turtles
-	my name is John Smith
-	the quick brown fox jumps over the lazy dog
EOF
)

VOICES=(en-us en-gb en-us+f3 en-us+m3 en-gb+f2 en-us+m7)
SPEEDS=(140 160 175)
if [[ $QUICK -eq 1 ]]; then
  VOICES=(en-us en-gb+f2)
fi

render() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  rm -rf "$CORPUS"
  mkdir -p "$CORPUS/tel" "$CORPUS/wide"
  printf '%s\n' "$MENU" >"$CORPUS/menu.tsv"
  local manifest="$CORPUS/manifest.tsv.partial" n=0 v p expected text speed voice file
  : >"$manifest"
  for v in "${!VOICES[@]}"; do
    voice=${VOICES[$v]}
    p=0
    while IFS=$'\t' read -r expected text; do
      speed=${SPEEDS[$(((v + p) % ${#SPEEDS[@]}))]}
      file=$(printf '%04d.wav' "$n")
      espeak-ng -v "$voice" -s "$speed" -w "$tmp/raw.wav" -- "$text"
      sox -q "$tmp/raw.wav" -r 8000 -c 1 -e u-law "$tmp/ulaw.wav" sinc 300-3400
      sox -q "$tmp/ulaw.wav" -e signed -b 16 "$CORPUS/tel/$file"
      sox -q "$tmp/raw.wav" -r 16000 -c 1 -e signed -b 16 "$CORPUS/wide/$file"
      printf '%s\t%s\t%s\t%s\t%s\n' "$file" "$expected" "$voice" "$speed" "$text" >>"$manifest"
      n=$((n + 1))
      p=$((p + 1))
    done <<<"$UTTERANCES"
  done
  mv "$manifest" "$CORPUS/manifest.tsv"
  echo "bench_asr: rendered $n recordings into $CORPUS" >&2
}

if [[ $RENDER -eq 1 || ! -f "$CORPUS/manifest.tsv" ]]; then
  render
fi

if [[ -n "${BENCH_CMD:-}" ]]; then
  read -r -a CMD <<<"$BENCH_CMD"
else
  if [[ $BUILD -eq 1 ]]; then
    (cd "$ROOT" && cargo build --release -j 1 --bin switchboard >&2)
  fi
  CMD=("${CARGO_TARGET_DIR:-$ROOT/target}/release/switchboard" speech bench)
fi

PIN=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
  PIN=(taskset -c 1)
fi
for mode in $MODES; do
  args=(--corpus "$CORPUS")
  [[ $mode == wideband ]] && args+=(--wideband)
  "${PIN[@]}" "${CMD[@]}" "${args[@]}"
done
