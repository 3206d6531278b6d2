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
# The machine's pip config names extra local indexes that may be absent; their warnings are noise.
pip_quiet() { $PIP "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

stale() {  # stale STAMP INPUT...: true when STAMP is missing or older than an input
  local s=$STAMPS/$1; shift
  [ -f "$s" ] || return 0
  for f in "$@"; do [ "$f" -nt "$s" ] && return 0; done
  return 1
}

if stale python-deps requirements.txt requirements-ros-pypi.txt; then
  echo "[install] torch, ROS 2 wheels, LIBERO and Python dependencies (first time: a few minutes)"
  pip_quiet install torch==2.13.0
  pip_quiet install -r requirements-ros-pypi.txt -r requirements.txt
  # Venvs made before requirements.txt named LIBERO's opencv-python had opencv-python-headless too; both install
  # into one cv2 folder, so removing one deletes the other's files: remove it, then restore opencv-python's.
  if "$VENV/bin/python" -m pip show -q opencv-python-headless 2>/dev/null; then
    pip_quiet uninstall -y opencv-python-headless
    pip_quiet install --force-reinstall --no-deps "$(grep -E '^opencv-python' requirements.txt)"
  fi
  touch "$STAMPS/python-deps"
fi

# The ROS build wheels export the wheel builder's Python and NumPy include folders; point them at this venv's.
if stale ros-cmake-repair "$STAMPS/python-deps"; then
  echo "[install] repairing the ROS wheels' CMake exports"
  read -r PY_INC NP_INC < <("$VENV/bin/python" -c \
    'import sysconfig, numpy; print(sysconfig.get_paths()["include"], numpy.get_include())')
  for f in "$VENV"/share/*/cmake/*.cmake; do
    grep -q '/opt/python/cp311-cp311' "$f" || continue
    sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" \
           -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" "$f"
  done
  touch "$STAMPS/ros-cmake-repair"
fi

# tramoe_msgs: plain cmake + rosidl_generate_interfaces, built in build/tramoe_msgs and installed into the venv
# prefix, whose lib/ the wheels' bootstrapper already puts on LD_LIBRARY_PATH (rosidl typesupport is found there).
MSG_INPUTS=$(find tramoe_msgs -type f | sort)
# shellcheck disable=SC2086
if stale tramoe-msgs "$STAMPS/ros-cmake-repair" $MSG_INPUTS; then
  echo "[install] building tramoe_msgs"
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
  rm -rf build/tramoe_msgs && mkdir -p build
  cmake -S tramoe_msgs -B build/tramoe_msgs -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release > build/tramoe_msgs.log 2>&1 \
    && cmake --build build/tramoe_msgs -j 2 >> build/tramoe_msgs.log 2>&1 \
    && cmake --install build/tramoe_msgs >> build/tramoe_msgs.log 2>&1 \
    || { tail -n 40 build/tramoe_msgs.log; echo "[install] tramoe_msgs build failed (log: build/tramoe_msgs.log)"; exit 1; }
  touch "$STAMPS/tramoe-msgs"
fi

# tramoe_ros itself, editable, with its console scripts.
if stale tramoe-ros setup.py setup.cfg; then
  echo "[install] tramoe_ros (editable)"
  pip_quiet install --no-deps --no-build-isolation -e .
  touch "$STAMPS/tramoe-ros"
fi

"$VENV/bin/python" -c 'import torch, rclpy, tramoe_msgs.msg, tramoe_ros' \
  || { echo "[install] the venv does not import torch, rclpy, tramoe_msgs and tramoe_ros"; exit 1; }
echo "[install] ready: $VENV"
