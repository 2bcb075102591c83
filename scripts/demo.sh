#!/usr/bin/env bash
# The README's first command: a virtual environment (.venv) with the package and its NDI
# extra, then the demo: the daemon against its built-in Scope emulator. Extra arguments go
# to `soundscape demo` (e.g. --ndi-loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash scripts/venv.sh ndi)"
exec "$(dirname "$python")/soundscape" demo "$@"
