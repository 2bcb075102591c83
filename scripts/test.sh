#!/usr/bin/env bash
# The project's test command (the README's second command). On a fresh Debian
# machine it installs what the tests need (Debian packages, and the package with
# its test extras into the virtual environment .venv: see scripts/venv.sh), starts
# a JACK server (dummy driver) for real audio and MIDI, runs ruff and the test
# suite, and stops JACK again. PYTHON picks the interpreter the venv is made from.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc and libc6-dev: PyAudio and aubio (the bench anchor) build from source on Linux.
APT_PACKAGES=(jackd2 jack-tools portaudio19-dev liblo-tools systemd chromium fluidsynth timgm6mb-soundfont iproute2 gcc libc6-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="$(bash scripts/venv.sh test audio ndi bench link)"

# A JACK server for the audio and MIDI tests, unless one is already running.
JACK_PID=""
if ! jack_lsp >/dev/null 2>&1; then
  jackd --no-realtime -d dummy -r 48000 -p 256 >/tmp/soundscape-jackd.log 2>&1 &
  JACK_PID=$!
  for _ in $(seq 1 100); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done
  jack_lsp >/dev/null 2>&1 || { echo "jackd did not start:"; cat /tmp/soundscape-jackd.log; exit 1; }
fi
cleanup() { [ -n "$JACK_PID" ] && kill "$JACK_PID" 2>/dev/null && wait "$JACK_PID" 2>/dev/null; true; }
trap cleanup EXIT
export MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK

"$PYTHON" -m ruff check daemon tests bench
"$PYTHON" -m ruff format --check daemon tests bench
"$PYTHON" -m pytest "$@"
