#!/usr/bin/env bash
# Creates .venv (Python 3.11) with torch (CPU), the ROS 2 Kilted wheels from PyPI (with the repair of their CMake
# exports), LIBERO, and builds tramoe_msgs into build/ros_ws. Idempotent: each step leaves a stamp and is skipped
# when its stamp is newer than its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
STAMPS=$VENV/.stamps

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

stale() {  # stale STAMP INPUT...: true when STAMP is missing or older than an input
  local s=$STAMPS/$1; shift
  [ -f "$s" ] || return 0
  for f in "$@"; do [ "$f" -nt "$s" ] && return 0; done
  return 1
}

if stale python-deps requirements.txt; then
  echo "[install] torch, ROS 2 wheels, LIBERO and Python dependencies (first time: a few minutes)"
  $PIP install torch==2.13.0
  $PIP install -r requirements.txt
  touch "$STAMPS/python-deps"
fi
