#!/usr/bin/env bash
# Installs the system packages Switchboard's tests and tools use, when missing.
# Idempotent: when everything is present it only runs `dpkg-query` and exits.
#
# To add a package, append a "package:command" pair to PACKAGES (the command
# is what we look for on PATH; leave it empty to ask dpkg instead).
set -euo pipefail

PACKAGES=(
  "sip-tester:sipp"        # SIPp: real-peer SIP tests and the SIP benchmark
  "libopus-dev:"           # libopus for the Opus codec (the opus crate links it)
  "pkg-config:pkg-config"  # how the opus crate finds libopus
  "openssl:openssl"        # openssl s_client: the TLS peer in the TLS tests
  "libpocketsphinx-dev:"   # speech recognition (linked; pulls libsphinxbase-dev)
  "pocketsphinx-en-us:"    # its US English acoustic model and dictionary
  "espeak-ng:espeak-ng"    # text-to-speech for prompts; speech in the IVR tests
  "sox:sox"                # band-limits test speech to a phone line
  # Later, as the tests that use them land:
  # "baresip:baresip"
  # "chromium:chromium"
)

missing=()
for entry in "${PACKAGES[@]}"; do
  pkg="${entry%%:*}"
  cmd="${entry#*:}"
  if [[ -n "$cmd" ]] && command -v "$cmd" >/dev/null 2>&1; then
    continue
  fi
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    continue
  fi
  missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
