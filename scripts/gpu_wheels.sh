#!/usr/bin/env bash
# Make the wheel folder a GPU machine without network needs for `make gpu-check`.
#
# Run where the package index is reachable (this checkout's .venv is enough). Writes into
# WHEELS (default <repo>/wheels, gitignored) the wheels for CPython 3.12 on manylinux
# x86_64 of what the GPU machine lacks: this project's own wheel, flake8 and its
# checkers, ast-grep-py, pytest, hypothesis, detectron2 0.6 (a wheel built from the
# pb1-detectron2==0.6 source distribution, with the pure-Python _C stub of
# scripts/install_detectron2.sh), the packages detectron2, DVIS-DAQ's dataset code
# and the harness import (fvcore, iopath, pycocotools, panopticapi-lite, ...).
# The GPU machine already has torch, torchvision, numpy, scipy, timm, einops, opencv
# and Pillow; none of them is downloaded. Every wheel is fetched without its
# dependencies: the list below is the whole closure, so nothing unexpected comes in.
#
# Environment: PY (default <repo>/.venv/bin/python), WHEELS, PYVER (default 3.12).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
WHEELS="${WHEELS:-$ROOT/wheels}"
PYVER="${PYVER:-3.12}"
ABI="cp${PYVER/./}"
log() { printf '[gpu-wheels] %s\n' "$*" >&2; }

# Wheels that exist on the index for CPython $PYVER / manylinux x86_64 (or for any platform).
BINARY=(
    "flake8>=5" "pyflakes" "pycodestyle" "mccabe"
    "ast-grep-py>=0.30"
    "pytest>=7" "iniconfig" "pluggy" "packaging"
    "hypothesis>=6" "attrs" "sortedcontainers"
    "iopath>=0.1.7,<0.1.10" "portalocker"
    "pycocotools>=2.0.2" "termcolor>=1.1" "yacs>=0.1.8" "tabulate" "cloudpickle" "tqdm>4.29.0" "pyyaml"
    "omegaconf>=2.1" "typing_extensions"
    "matplotlib" "contourpy" "cycler" "fonttools" "kiwisolver" "pyparsing" "python-dateutil" "six"
)
# Packages published as source distributions only (pure Python): built into wheels here.
SOURCE_ONLY=("fvcore>=0.1.5,<0.1.6" "antlr4-python3-runtime==4.9.3")

mkdir -p "$WHEELS"
START=$(date +%s)

log "this project's wheel"
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WHEELS" "$ROOT"

log "binary wheels for CPython $PYVER manylinux x86_64 (no dependencies: the list is the closure)"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --abi "$ABI" --abi abi3 --abi none --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$WHEELS" "${BINARY[@]}"

# panopticapi-lite: DVIS-DAQ's dataset code imports panopticapi at import time; its pins
# (numpy<2, Pillow>=10) are not what this environment runs, so it installs without them.
"$PY" -m pip download --quiet --no-deps -d "$WHEELS" "panopticapi-lite" || log "panopticapi-lite: not found"

log "pure-Python wheels built from source distributions: ${SOURCE_ONLY[*]}"
"$PY" -m pip wheel --quiet --no-deps -w "$WHEELS" "${SOURCE_ONLY[@]}"

log "detectron2 0.6 (the pb1-detectron2 source distribution, no compiled ops)"
# Built as scripts/install_detectron2.sh installs it: the Python sources, a setup.py that
# builds no extension, and that script's pure-Python detectron2._C stub (copied from this
# environment's install), so the wheel is py3-none-any. A wheel with the compiled ops would
# be built for this interpreter, not for the GPU machine's 3.12.
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary=:all: --no-build-isolation -d "$TMP/dl" "pb1-detectron2==0.6"
mkdir -p "$TMP/src"
tar -xzf "$(ls "$TMP"/dl/*.tar.gz | head -1)" -C "$TMP/src"
SRC="$(find "$TMP/src" -mindepth 1 -maxdepth 1 -type d | head -1)"
STUB="$("$PY" -c 'import detectron2._C as m; assert getattr(m, "STUB_TAG", None); print(m.__file__)')" || {
    log "this environment's detectron2 is not the pure-Python build of scripts/install_detectron2.sh; run make bootstrap"
    exit 1
}
cp "$STUB" "$SRC/detectron2/_C.py"
cat > "$SRC/setup.py" <<'SETUP'
from setuptools import find_packages, setup

PROJECT_DIRS = {
    "detectron2.projects.point_rend": "projects/PointRend/point_rend",
    "detectron2.projects.deeplab": "projects/DeepLab/deeplab",
    "detectron2.projects.panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}
setup(name="pb1-detectron2", version="0.6",
      description="detectron2 0.6 Python sources without the compiled extension",
      packages=find_packages(include=("detectron2", "detectron2.*")) + list(PROJECT_DIRS),
      package_dir=PROJECT_DIRS, python_requires=">=3.7", ext_modules=[])
SETUP
rm -f "$SRC/pyproject.toml"
rm -rf "$SRC"/*.egg-info
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WHEELS" "$SRC"

# A pure-Python wheel built here is tagged py3-none-any; a wheel built for this
# interpreter's ABI would not install on 3.12: refuse it now, not on the GPU machine.
BAD="$(ls "$WHEELS" | grep -E -- '-cp[0-9]+-' | grep -v -- "-$ABI-" | grep -v -- '-abi3-' || true)"
if [ -n "$BAD" ]; then
    log "wheels built for another Python than $PYVER: $BAD"
    exit 1
fi
COUNT=$(ls "$WHEELS"/*.whl | wc -l)
SIZE=$(du -sh "$WHEELS" | cut -f1)
log "$COUNT wheels, $SIZE in $WHEELS ($(( $(date +%s) - START )) s)"
