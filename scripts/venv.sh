#!/usr/bin/env bash
# Creates (once) and updates the project's virtual environment in .venv and installs
# the package into it with the extras given as arguments, e.g. `bash scripts/venv.sh ndi`.
# Works with Debian's own python3 (PEP 668 forbids installing into it: hence the venv),
# pyenv or uv interpreters alike. PYTHON picks the interpreter (default: python3).
# Prints the venv's python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${SOUNDSCAPE_VENV:-.venv}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "installing: $*" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 || { echo "no $PYTHON found" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Soundscape needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  # Debian splits venv/ensurepip and the C headers (PyAudio builds from source) into packages.
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    py="python$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install python3-venv "$py-venv" python3-dev || true
    "$PYTHON" -m venv "$VENV"
  fi
fi
# Headers for the one dependency without a Linux wheel (PyAudio), when the interpreter lacks them.
if ! "$VENV/bin/python" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  apt_install python3-dev || true
fi

extras="$(IFS=,; echo "$*")"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}" >&2
echo "$VENV/bin/python"
