#!/usr/bin/env bash
# Set up the project's virtualenv on a fresh machine (idempotent).
#
#   1. create .venv with python3 -m venv, if missing;
#   2. install torch and torchvision at the pinned versions;
#   3. install detectron2 (scripts/install_detectron2.sh);
#   4. install this project in editable mode with its harness and test extras;
#   5. install panopticapi-lite without dependencies (dataset code of
#      Mask2Former-family projects imports panopticapi), and what the real
#      DVIS-DAQ sources import besides (einops, timm, opencv-python-headless).
#
# A stamp file inside .venv records a hash of pyproject.toml and of the set-up
# scripts; when it matches, nothing is done. FORCE=1 redoes every step.
#
# Environment: PYTHON3 (interpreter used to create the venv, default python3),
# VENV (default <repo>/.venv), TORCH_VERSION, TORCHVISION_VERSION, FORCE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON3="${PYTHON3:-python3}"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
FORCE="${FORCE:-0}"
PY="$VENV/bin/python"
STAMP="$VENV/.flake8-device-bootstrap"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

fingerprint() {
    {
        printf 'torch=%s torchvision=%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION"
        cat pyproject.toml scripts/bootstrap.sh scripts/install_detectron2.sh
    } | sha256sum | cut -d' ' -f1
}

WANT="$(fingerprint)"
if [ "$FORCE" != "1" ] && [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    log "up to date ($VENV)"
    exit 0
fi

START=$(date +%s)

if [ ! -x "$PY" ]; then
    log "creating $VENV"
    "$PYTHON3" -m venv "$VENV"
fi
rm -f "$STAMP"

# Installed version of a distribution, or nothing (no import of the package).
dist_version() {
    "$PY" -c 'import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass' "$1"
}

have_torch="$(dist_version torch)"
have_tv="$(dist_version torchvision)"
if [ "$FORCE" = "1" ] || [ "${have_torch%%+*}" != "$TORCH_VERSION" ] || [ "${have_tv%%+*}" != "$TORCHVISION_VERSION" ]; then
    log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
    "$PY" -m pip install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
else
    log "torch $have_torch and torchvision $have_tv already installed"
fi

log "installing detectron2"
PYTHON="$PY" FORCE="$FORCE" bash "$ROOT/scripts/install_detectron2.sh"

log "installing flake8-device (editable, extras harness and test)"
"$PY" -m pip install --quiet -e ".[harness,test]"

# Dataset code of Mask2Former-family projects (DVIS-DAQ's dvis_Plus among them)
# imports panopticapi at import time; PyPI has it as panopticapi-lite, whose
# numpy<2 and Pillow>=10 pins conflict with detectron2 0.6 (Pillow<10), so it
# goes in without its dependencies (it only needs numpy and Pillow).
log "installing panopticapi-lite (no dependencies)"
"$PY" -m pip install --quiet --no-deps panopticapi-lite

# What the real DVIS-DAQ sources import beyond detectron2's own dependencies
# (docs/harness.md): einops and timm (model code), OpenCV (detectron2's
# point_rend, imported by Mask2Former). The headless OpenCV build needs no
# display libraries.
log "installing the DVIS-DAQ project's own imports (einops, timm, opencv-python-headless)"
"$PY" -m pip install --quiet "einops==0.8.2" "timm==1.0.31" "opencv-python-headless==5.0.0.93"

# Record what this venv was set up from.
printf '%s\n' "$WANT" > "$STAMP"
log "done in $(( $(date +%s) - START )) s"
