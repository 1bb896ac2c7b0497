#!/usr/bin/env bash
# Install detectron2 0.6 (pure Python, no compiled operators) into a virtualenv.
#
# detectron2 is not published on the package index under its own name. The
# `pb1-detectron2==0.6` source distribution carries the upstream v0.6 Python
# package but none of its C++/CUDA sources, so a plain `pip install` of it dies
# while building the `detectron2._C` extension. This script:
#
#   1. installs the pinned runtime dependencies detectron2 0.6 needs at import;
#   2. fetches that source distribution with pip;
#   3. replaces its setup.py with one that builds no extension, and adds a
#      pure-Python `detectron2/_C.py` whose operators raise a clear error;
#   4. pip-installs the result (a regular, non-editable install).
#
# Usage:  PYTHON=.venv/bin/python scripts/install_detectron2.sh
#   PYTHON   interpreter of the target environment (default: <repo>/.venv/bin/python);
#            torch and torchvision must already be installed there.
#   FORCE=1  reinstall even when a matching install is found.
#
# Idempotent: when detectron2 0.6 with this stub is already importable together
# with every pinned dependency, the script does nothing.
# See docs/detectron2.md for what works and what does not.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
FORCE="${FORCE:-0}"

D2_DIST="pb1-detectron2"
D2_VERSION="0.6"
STUB_TAG="flake8-device-stub-2"

# Runtime dependencies: the version caps detectron2 0.6 needs, plus exactly the
# packages that importing detectron2.config, .structures, .layers, .modeling and
# .checkpoint pulls in (measured on this install; see docs/detectron2.md).
DEPS=(
    "Pillow<10"
    "fvcore>=0.1.5,<0.1.6"
    "iopath>=0.1.7,<0.1.10"
    "pycocotools>=2.0.2"
    "termcolor>=1.1"
    "yacs>=0.1.8"
    "tabulate"
    "cloudpickle"
    "tqdm>4.29.0"
    "pyyaml"
    "omegaconf>=2.1"
    "numpy"
)

log() { printf '[install_detectron2] %s\n' "$*" >&2; }

if [ ! -x "$PYTHON" ]; then
    log "no interpreter at PYTHON=$PYTHON (create the virtualenv first, e.g. scripts/bootstrap.sh)"
    exit 1
fi

if ! "$PYTHON" -c "import torch, torchvision" 2>/dev/null; then
    log "torch and torchvision must be installed in $PYTHON's environment first"
    exit 1
fi

# Already done?  Checks the detectron2 version, the stub marker and the pins.
is_installed() {
    "$PYTHON" - "$STUB_TAG" "$D2_VERSION" "${DEPS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib import metadata

tag, version, *deps = sys.argv[1:]
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement

for dep in deps:
    req = Requirement(dep)
    try:
        have = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        sys.exit(1)
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        sys.exit(1)

import detectron2
import detectron2._C as ops

if detectron2.__version__ != version or getattr(ops, "STUB_TAG", None) != tag:
    sys.exit(1)
import detectron2.config, detectron2.modeling, detectron2.structures  # noqa: E401
import detectron2.layers, detectron2.checkpoint  # noqa: E401
EOF
}

if [ "$FORCE" != "1" ] && is_installed; then
    log "detectron2 $D2_VERSION (pure-Python build) already installed for $PYTHON; nothing to do"
    exit 0
fi

START=$(date +%s)

log "installing pinned dependencies"
"$PYTHON" -m pip install --quiet "${DEPS[@]}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/d2-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "fetching the $D2_DIST==$D2_VERSION source distribution"
# Its setup.py imports torch, so the metadata step has to run in this
# environment (--no-build-isolation); --no-binary keeps pip from picking a wheel.
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "$D2_DIST==$D2_VERSION" -d "$WORK/dl"

ARCHIVE="$(ls "$WORK"/dl/*.tar.gz | head -n 1)"
mkdir -p "$WORK/src"
tar -xzf "$ARCHIVE" -C "$WORK/src"
SRC="$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)"

if [ ! -f "$SRC/detectron2/__init__.py" ] || ! grep -q "__version__ = \"$D2_VERSION\"" "$SRC/detectron2/__init__.py"; then
    log "unexpected archive layout in $ARCHIVE"
    exit 1
fi
if [ -e "$SRC/detectron2/_C.py" ] || ls "$SRC"/detectron2/_C*.so >/dev/null 2>&1; then
    log "archive already ships a detectron2._C; refusing to overwrite it"
    exit 1
fi

log "writing the pure-Python detectron2._C stub"
cat > "$SRC/detectron2/_C.py" <<EOF
"""Stand-in for detectron2's compiled extension module.

This detectron2 was installed from Python sources only (no C++/CUDA build).
Everything that needs no compiled operator works; each compiled operator below
raises RuntimeError naming itself when called. Installed by
scripts/install_detectron2.sh of flake8-device.
"""

STUB_TAG = "$STUB_TAG"

EOF
cat >> "$SRC/detectron2/_C.py" <<'EOF'
# Compiled entry points of detectron2 0.6, grouped by the feature that uses them.
OPERATORS = {
    "box_iou_rotated": "rotated box IoU (detectron2.layers.pairwise_iou_rotated, RotatedBoxes)",
    "nms_rotated": "rotated NMS (detectron2.layers.nms_rotated, batched_nms_rotated)",
    "roi_align_rotated_forward": "ROIAlignRotated (detectron2.layers.ROIAlignRotated)",
    "roi_align_rotated_backward": "ROIAlignRotated (detectron2.layers.ROIAlignRotated)",
    "deform_conv_forward": "deformable convolution (detectron2.layers.DeformConv)",
    "deform_conv_backward_input": "deformable convolution (detectron2.layers.DeformConv)",
    "deform_conv_backward_filter": "deformable convolution (detectron2.layers.DeformConv)",
    "modulated_deform_conv_forward": "modulated deformable convolution (ModulatedDeformConv)",
    "modulated_deform_conv_backward": "modulated deformable convolution (ModulatedDeformConv)",
    "InstanceAnnotation": "fast COCO evaluation (detectron2.evaluation.fast_eval_api)",
    "COCOevalEvaluateImages": "fast COCO evaluation (detectron2.evaluation.fast_eval_api)",
    "COCOevalAccumulate": "fast COCO evaluation (detectron2.evaluation.fast_eval_api)",
}


class MissingCompiledOperator(RuntimeError):
    """Raised when a compiled detectron2 operator is used."""


def _unavailable(name, feature):
    def op(*args, **kwargs):
        raise MissingCompiledOperator(
            "detectron2._C.{} is a compiled operator and this detectron2 was installed "
            "without its C++/CUDA extension; {} is unavailable. Build detectron2 from "
            "its full sources to use it.".format(name, feature)
        )

    op.__name__ = name
    op.__qualname__ = name
    op.__doc__ = "Unavailable compiled operator used by {}.".format(feature)
    return op


for _name, _feature in OPERATORS.items():
    globals()[_name] = _unavailable(_name, _feature)
del _name, _feature


# detectron2.layers.nms_rotated calls torch.ops.detectron2.nms_rotated, which the
# compiled module registers with the dispatcher. Register a stand-in operator so
# that call fails with the same clear message instead of an AttributeError.
try:
    import torch

    _LIBRARY = torch.library.Library("detectron2", "DEF")
    _LIBRARY.define("nms_rotated(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor")
    _nms_rotated_op = _unavailable("nms_rotated", OPERATORS["nms_rotated"])

    def _nms_rotated_impl(boxes, scores, iou_threshold):
        return _nms_rotated_op(boxes, scores, iou_threshold)

    _LIBRARY.impl("nms_rotated", _nms_rotated_impl, "CompositeExplicitAutograd")
except Exception:  # namespace already taken: leave the dispatcher as it is
    pass


def get_compiler_version():
    return "none (pure-Python detectron2, no compiled extension)"


def get_cuda_version():
    return "none (pure-Python detectron2, no compiled extension)"


def has_cuda():
    return False


def __getattr__(name):
    # Any other operator name: fail when called, not at attribute lookup, so
    # that feature probes such as hasattr() behave like the compiled module.
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable(name, "this operator")
EOF

log "replacing setup.py with one that builds no extension"
# The archive's own setup.py imports torch at build time and declares the
# detectron2._C extension; this one only packages the Python sources.
cat > "$SRC/setup.py" <<EOF
from setuptools import find_packages, setup

# Subpackages that upstream ships from its projects/ folder.
PROJECT_DIRS = {
    "detectron2.projects.point_rend": "projects/PointRend/point_rend",
    "detectron2.projects.deeplab": "projects/DeepLab/deeplab",
    "detectron2.projects.panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}

setup(
    name="$D2_DIST",
    version="$D2_VERSION",
    description="detectron2 $D2_VERSION Python sources without the compiled extension",
    packages=find_packages(include=("detectron2", "detectron2.*")) + list(PROJECT_DIRS),
    package_dir=PROJECT_DIRS,
    python_requires=">=3.7",
    install_requires=[$(printf '"%s", ' "${DEPS[@]}")],
    ext_modules=[],
)
EOF
rm -f "$SRC/pyproject.toml"
rm -rf "$SRC"/*.egg-info

log "installing the patched package"
# A previous install of the same version would be kept as "already satisfied".
"$PYTHON" -m pip uninstall --quiet --yes "$D2_DIST" >/dev/null 2>&1 || true
"$PYTHON" -m pip install --quiet --no-build-isolation "$SRC"

log "checking the import"
"$PYTHON" -c "import detectron2, detectron2.modeling, detectron2.config, detectron2.structures; from detectron2.modeling import build_model"
if ! is_installed; then
    log "post-install check failed"
    exit 1
fi
log "done in $(( $(date +%s) - START )) s"
