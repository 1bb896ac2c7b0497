"""One run of a detectron2 project's model, in a process of its own.

The project harness (:mod:`flake8_device.harness.project`) starts this module
as ``python -m flake8_device.harness.d2 SPEC.json`` once per copy and
setting (original on the CPU, fixed on the CPU, each under the virtual
accelerator, each on a real GPU). A process imports one copy of the project
only, so detectron2's global registries (``META_ARCH_REGISTRY``...) hold that
copy's classes and nothing else. Results go to a file written with
``torch.save``: named CPU tensors per section, errors, device mismatches and
facts about the model.

What one run does, given the spec (a JSON object, see :func:`run`):

1. puts the copy's root first on ``sys.path`` and, for each candidate set-up
   in turn (one per training script), imports the modules that register the
   model and builds the config with its ``add_*_config`` functions, then the
   config file, then ``opts``: the first candidate whose config accepts the
   file is used. ``MODEL.WEIGHTS`` is emptied and ``MODEL.DEVICE`` set;
2. seeds Python, NumPy and torch, builds the model with detectron2's
   ``build_model(cfg)`` and loads the shared state dict file (the first run
   writes it, with its ``_metadata``), so every process holds the same random
   weights;
3. **train**: synthetic inputs in the format of the project's dataset mapper
   (a video clip of the config's ``SAMPLING_FRAME_NUM`` frames, or one image),
   as the mapper gives them (uint8), ``sum(loss_dict.values())``, backward;
   records every loss, the objective and every parameter gradient;
4. **infer**: ``eval()`` forward under ``torch.no_grad()``, as detectron2's
   evaluator runs it; records the outputs (Python numbers become tensors) and
   the tensors the model builds on the way (forward outputs of its top-level
   submodules, or the ``capture`` names);
5. **grad** (optional): the frames as float tensors that require grad; the
   input gradients of the training objective, and the gradient of the sum of
   the captured tensors' means with respect to each input frame (the
   saliency). What cannot be taken is reported as not available, with why.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
import random
import re
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

SECTIONS = ("state", "train", "train_grads", "train_input_grads", "infer", "captured", "saliency")
_SETUP_CALL = re.compile(r"^add_\w*config$")


# --------------------------------------------------------------------------
# What the training script says
# --------------------------------------------------------------------------


def _top_level_names(root: str) -> List[str]:
    names = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isfile(os.path.join(path, "__init__.py")):
            names.append(entry)
        elif entry.endswith(".py") and os.path.isfile(path):
            names.append(entry[:-3])
    return names


def training_scripts(root: str) -> List[str]:
    """Every training script of the project, in the order they are tried:
    ``train*.py`` at the root (``train_net*.py`` first), then under ``projects/*/``
    and ``tools/``."""
    found: List[str] = []
    folders = [root] + sorted(os.path.join(root, "projects", d) for d in (
        os.listdir(os.path.join(root, "projects")) if os.path.isdir(os.path.join(root, "projects")) else ()))
    folders.append(os.path.join(root, "tools"))
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        names = sorted(f for f in os.listdir(folder) if f.endswith(".py") and f.startswith("train"))
        names.sort(key=lambda f: (not f.startswith("train_net"), len(f), f))
        found += [os.path.join(folder, f) for f in names]
    return found


def find_training_script(root: str) -> Optional[str]:
    """The first training script :func:`training_scripts` lists (None without one)."""
    scripts = training_scripts(root)
    return scripts[0] if scripts else None


def read_setup(script: str, root: str) -> Dict[str, List[str]]:
    """The ``add_*_config`` calls of the script's ``setup()`` (``module:function``,
    in call order) and the project modules it imports (they register the model).

    Only the script's text is read (``ast``); nothing of it runs.
    """
    with open(script, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=script)
    local = set(_top_level_names(root))
    bound: Dict[str, str] = {}
    imported: List[str] = []

    def visit_imports(body):
        for node in body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{node.module}:{alias.name}"
                if node.module.split(".")[0] in local and node.module not in imported:
                    imported.append(node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in local and alias.name not in imported:
                        imported.append(alias.name)
            elif isinstance(node, ast.Try):
                visit_imports(node.body)

    visit_imports(tree.body)
    modules: Dict[str, str] = {}  # names bound by `import x` / `import x.y as z`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    own = {n.name for n in funcs}
    script_module = os.path.splitext(os.path.basename(script))[0]
    # setup() as in detectron2's tools; else any function that calls add_*_config (setup_cfg...)
    chosen = [n for n in funcs if n.name == "setup"] or [n for n in funcs if n.name.startswith("setup")] or funcs
    found: List[Tuple[int, int, str]] = []
    for fn in chosen:
        visit_imports(fn.body)  # imports inside setup() itself
        for sub in ast.walk(fn):
            if not isinstance(sub, ast.Call):
                continue
            spec = None
            if isinstance(sub.func, ast.Name) and _SETUP_CALL.match(sub.func.id):
                spec = bound.get(sub.func.id)
                if spec is None and sub.func.id in own:
                    # defined in the script itself: import the script as a module (its main is guarded)
                    spec = f"{script_module}:{sub.func.id}"
                if spec is None:
                    raise ValueError(f"{script}: {fn.name}() calls {sub.func.id} but the script does not import it")
            elif (isinstance(sub.func, ast.Attribute) and _SETUP_CALL.match(sub.func.attr)
                  and isinstance(sub.func.value, ast.Name)):
                base = sub.func.value.id
                if base in modules:
                    spec = f"{modules[base]}:{sub.func.attr}"
                elif base in bound:  # from pkg import module
                    spec = f"{bound[base].replace(':', '.')}:{sub.func.attr}"
                else:
                    continue
                if spec.split(":")[0].split(".")[0] in local and spec.split(":")[0] not in imported:
                    imported.append(spec.split(":")[0])
            if spec:
                found.append((sub.lineno, sub.col_offset, spec))
    calls: List[str] = []
    for _, _, spec in sorted(found):
        if spec not in calls:
            calls.append(spec)
    if not calls:
        raise ValueError(f"{script}: no setup() calling add_*_config functions; name them with --setup")
    return {"setup": calls, "imports": imported}


def _resolve(spec: str) -> Callable:
    mod_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"{spec!r}: expected module:function")
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def build_cfg(spec: Dict[str, Any]):
    """The frozen detectron2 config of ``spec`` (setup functions, file, opts, weights, device)."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    for fn in spec["setup"]:
        _resolve(fn)(cfg)
    cfg.merge_from_file(spec["config"])
    if spec.get("opts"):
        cfg.merge_from_list(list(spec["opts"]))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = spec["device"]
    cfg.freeze()
    return cfg


def setup_candidates(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The set-ups to try, in order: ``spec['candidates']`` (one per training
    script), or the one of ``spec['setup']``/``spec['imports']``."""
    return list(spec.get("candidates") or [{"script": spec.get("setup_from"), "setup": spec.get("setup", []),
                                             "imports": spec.get("imports", [])}])


def choose_setup(spec: Dict[str, Any]):
    """Import the modules and build the config with the first candidate set-up
    whose config accepts the file (``KeyError: Non-existent config key`` moves on
    to the next). Returns ``(cfg, candidate, rejected)``; raises the first error
    when no candidate accepts it, with the candidates and ``--setup-script`` named."""
    rejected: List[Dict[str, str]] = []
    errors: List[BaseException] = []
    first: Optional[BaseException] = None
    cands = setup_candidates(spec)
    root = os.path.abspath(spec.get("root") or ".")
    for cand in cands:
        try:
            if cand.get("path"):  # a script under projects/NAME/ imports from its own folder
                folder = os.path.join(root, cand["path"])
                if folder not in sys.path:
                    sys.path.insert(1, folder)
            for mod in cand.get("imports", []):
                importlib.import_module(mod)
            cfg = build_cfg(dict(spec, setup=cand["setup"]))
            _check_registered(cfg)
            return cfg, cand, rejected
        except Exception as exc:
            if first is None:
                first = exc
            errors.append(exc)
            rejected.append({"script": str(cand.get("script")), "error": f"{type(exc).__name__}: {exc}"[:300]})
            if not isinstance(exc, (KeyError, AttributeError)) and len(cands) == 1:
                raise
    assert first is not None
    if isinstance(first, ImportError) or any(isinstance(e, ImportError) for e in errors):
        # the project cannot be imported: that, not the config, is what stops every candidate
        raise next(e for e in [first] + errors if isinstance(e, ImportError))
    if len(cands) > 1:
        lines = "; ".join(f"{r['script']}: {r['error']}" for r in rejected)
        raise SetupError(f"no training script's setup() accepts the config (tried {len(cands)}: {lines}); "
                         "name the right one with --setup-script FILE, or the functions with --setup") from first
    raise first


class SetupError(RuntimeError):
    """No candidate set-up accepts the config."""


class NotRegistered(KeyError):
    """The config's meta-architecture is not registered by the imported modules."""


def _check_registered(cfg) -> None:
    from detectron2.modeling import META_ARCH_REGISTRY

    name = cfg.MODEL.META_ARCHITECTURE
    if name not in META_ARCH_REGISTRY:
        raise NotRegistered(f"MODEL.META_ARCHITECTURE {name!r} is not registered by the modules the script imports")


# --------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------


def config_frames(cfg) -> Optional[int]:
    """``INPUT.SAMPLING_FRAME_NUM`` of the config, or None where it has none."""
    try:
        n = cfg.INPUT.get("SAMPLING_FRAME_NUM")
        return int(n) if n is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def input_size(cfg, frames: Optional[int], height: int, width: int, fmt: str = "video") -> Dict[str, Any]:
    """Frame count and size, height and width rounded up to the model's size divisibility.

    ``frames`` None: the clip length of the config (``INPUT.SAMPLING_FRAME_NUM``,
    3 without one) for a video, 1 for an image."""
    div = 1
    for key in ("MASK_FORMER.SIZE_DIVISIBILITY", "BACKBONE.SIZE_DIVISIBILITY", "SIZE_DIVISIBILITY"):
        node = cfg.MODEL
        try:
            for part in key.split("."):
                node = getattr(node, part)
            div = max(div, int(node))
        except (AttributeError, TypeError, ValueError):
            continue
    try:
        div = max(div, int(cfg.INPUT.get("SIZE_DIVISIBILITY", 0) or 0))
    except (AttributeError, TypeError, ValueError):
        pass
    h = -(-height // div) * div
    w = -(-width // div) * div
    if fmt == "image":
        t, source = 1, "one image"
    elif frames is not None:
        t, source = int(frames), "--num-frames"
    else:
        n = config_frames(cfg)
        t, source = (n, "INPUT.SAMPLING_FRAME_NUM") if n else (3, "default (the config has no SAMPLING_FRAME_NUM)")
    return {"frames": t, "frames_from": source, "height": h, "width": w, "divisibility": div,
            "channels": len(cfg.MODEL.PIXEL_MEAN), "format": fmt}


def _class_counts(node, path: str = "MODEL") -> List[Tuple[str, int]]:
    found = []
    for key in sorted(node.keys()):
        value = node[key]
        if hasattr(value, "keys"):
            found += _class_counts(value, f"{path}.{key}")
        elif key == "NUM_CLASSES" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            found.append((f"{path}.{key}", value))
    return found


def num_classes(cfg) -> int:
    """The number of classes the synthetic labels stay below: the smallest
    ``NUM_CLASSES`` anywhere under ``MODEL`` (``SEM_SEG_HEAD``, ``ROI_HEADS``, or a
    model's own ``MODEL.<NAME>.NUM_CLASSES``), so every head accepts every label."""
    counts = _class_counts(cfg.MODEL)
    return min(v for _, v in counts) if counts else 1


_VIDEO_DATASET = re.compile(
    r"yt_?vis|ytvos|ovis|vipseg|vspw|lvvis|video|(^|_)(uvo|burst|mose|davis|tao|vis|vos|vss)(_|\d|$)", re.IGNORECASE)


def input_format(cfg, forced: Optional[str] = None) -> Tuple[str, str]:
    """``("video" | "image", why)``: the format of the project's dataset mapper.

    A video when the datasets are video datasets (``ytvis_2019_train``,
    ``ovis_train``...) or the mapper is a video mapper, an image otherwise (a
    config with ``SAMPLING_FRAME_NUM`` and no dataset names is taken as a video)."""
    if forced in ("image", "video"):
        return forced, "--input-format"
    names = [str(n) for n in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)]
    video = [n for n in names if _VIDEO_DATASET.search(n)]
    if video:
        return "video", f"video dataset {video[0]!r} in DATASETS"
    mapper = str(cfg.INPUT.get("DATASET_MAPPER_NAME", "") or "")
    if "video" in mapper.lower() or "vis" in mapper.lower().split("_"):
        return "video", f"INPUT.DATASET_MAPPER_NAME {mapper!r}"
    if names:
        return "image", f"image dataset {names[0]!r} in DATASETS"
    if config_frames(cfg):
        return "video", "INPUT.SAMPLING_FRAME_NUM without dataset names"
    return "image", "no video dataset or mapper in the config"


def image_inputs(size: Dict[str, Any], classes: int, seed: int, instances: int = 2, mask_tensor: bool = True):
    """One image in the format of a detectron2 image dataset mapper.

    ``image``: a uint8 tensor (C, H, W); ``instances``: ``gt_boxes``,
    ``gt_classes``, ``gt_masks`` (a uint8 tensor (N, H, W) as Mask2Former's
    mappers give, or ``BitMasks`` with ``mask_tensor=False`` as detectron2's
    ``DatasetMapper`` gives); ``sem_seg`` (H, W int64: each object's class, 0 elsewhere); plus ``height``, ``width``,
    ``file_name``, ``image_id``.
    """
    import torch
    from detectron2.structures import BitMasks, Boxes, Instances

    video = video_inputs(dict(size, frames=1), classes, seed, instances)[0]
    H, W = size["height"], size["width"]
    inst = video["instances"][0]
    masks = inst.gt_masks.tensor
    out = Instances((H, W))
    out.gt_boxes = Boxes(inst.gt_boxes.tensor.clone())
    out.gt_classes = inst.gt_classes.clone()
    out.gt_masks = masks.to(torch.uint8) if mask_tensor else BitMasks(masks)
    sem = torch.zeros((H, W), dtype=torch.int64)
    for i in range(masks.shape[0]):
        sem[masks[i]] = int(inst.gt_classes[i])
    return [{"image": video["image"][0], "instances": out, "sem_seg": sem, "height": H, "width": W,
             "file_name": "synthetic_00000.jpg", "image_id": 0}]


def make_inputs(size: Dict[str, Any], classes: int, seed: int, cfg=None):
    """The inputs of ``size['format']``: :func:`image_inputs` or :func:`video_inputs`."""
    if size.get("format") == "image":
        mapper = str(cfg.INPUT.get("DATASET_MAPPER_NAME", "") or "") if cfg is not None else ""
        # Mask2Former-style mappers give the masks as a tensor, detectron2's own as BitMasks
        return image_inputs(size, classes, seed, mask_tensor=bool(mapper))
    return video_inputs(size, classes, seed)


def frames_of(inputs) -> List[Any]:
    """The image tensors of the inputs (every frame of every video, or every image)."""
    out = []
    for d in inputs:
        img = d["image"]
        out += list(img) if isinstance(img, (list, tuple)) else [img]
    return out


def set_frames(inputs, frames: List[Any]) -> None:
    """Put ``frames`` (in :func:`frames_of` order) back into the inputs."""
    i = 0
    for d in inputs:
        if isinstance(d["image"], (list, tuple)):
            n = len(d["image"])
            d["image"] = list(frames[i:i + n])
            i += n
        else:
            d["image"] = frames[i]
            i += 1


def video_inputs(size: Dict[str, int], classes: int, seed: int, instances: int = 2):
    """One video in the format of a detectron2 video dataset mapper (YTVIS style).

    ``image``: T uint8 tensors (C, H, W); ``instances``: one ``Instances``
    per frame with ``gt_boxes`` (from the masks), ``gt_classes``,
    ``gt_ids`` and ``gt_masks`` (``BitMasks``); plus ``height``, ``width``,
    ``length``, ``video_len``, ``frame_idx`` and ``file_names``. Objects are
    rectangles of a flat colour over a noise background that move from frame to
    frame, each with its own class.
    """
    import torch
    from detectron2.structures import BitMasks, Boxes, Instances

    g = torch.Generator().manual_seed(seed)
    T, H, W, C = size["frames"], size["height"], size["width"], size["channels"]
    frames = [torch.randint(0, 256, (C, H, W), generator=g, dtype=torch.uint8) for _ in range(T)]
    classes_of = [int(c) for c in torch.randint(0, max(1, classes), (instances,), generator=g)]
    colours = torch.randint(0, 256, (instances, C), generator=g, dtype=torch.uint8)
    per_frame = []
    for t in range(T):
        masks = torch.zeros((instances, H, W), dtype=torch.bool)
        for i in range(instances):
            h0 = (H // 4 + i * H // 5 + 3 * t) % max(1, H // 2)
            w0 = (W // 5 + i * W // 4 + 5 * t) % max(1, W // 2)
            masks[i, h0:h0 + H // 3, w0:w0 + W // 3] = True
            # the object is visible in the frame: a flat colour over the noise
            frames[t][:, masks[i]] = colours[i][:, None]
        bm = BitMasks(masks)
        inst = Instances((H, W))
        inst.gt_boxes = Boxes(bm.get_bounding_boxes().tensor)
        inst.gt_classes = torch.tensor(classes_of, dtype=torch.int64)
        inst.gt_ids = torch.arange(instances, dtype=torch.int64)
        inst.gt_masks = bm
        per_frame.append(inst)
    video = {
        "height": H, "width": W, "length": T, "video_len": T, "video_id": 0,
        "frame_idx": list(range(T)), "file_names": [f"synthetic_{t:05d}.jpg" for t in range(T)],
        "image": frames, "instances": per_frame,
    }
    return [video]


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def tensor_digest(t: Any):
    """SHA-256 of a tensor's dtype, shape and bytes, as a uint8 tensor of 32 elements.

    Two digests are equal exactly when the tensors are bitwise equal (up to
    hash collisions); the weights are compared this way, so that a result file
    does not carry a second copy of every weight.
    """
    import hashlib

    import torch

    c = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{c.dtype}{tuple(c.shape)}".encode())
    # reshape first: a 0-dim tensor (a scalar parameter) cannot be viewed as bytes
    h.update(c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b"")
    return torch.tensor(list(h.digest()), dtype=torch.uint8)


def _where(exc: BaseException, root: str) -> str:
    from .checks import where

    return where(exc, [root])


# Import names whose package on the index has another name, or that no index has.
PACKAGE_HINTS = {
    "panopticapi": "pip install panopticapi-lite (the import name panopticapi; the original panopticapi exists only"
                   " as a source repository, github.com/cocodataset/panopticapi)",
    "cv2": "pip install opencv-python-headless",
    "sklearn": "pip install scikit-learn",
    "skimage": "pip install scikit-image",
    "PIL": "pip install Pillow",
    "yaml": "pip install PyYAML",
    "fvcore": "pip install fvcore",
    "pycocotools": "pip install pycocotools",
    "lvis": "pip install lvis",
    "einops": "pip install einops",
    "timm": "pip install timm",
    "detectron2": "detectron2 is not on the package index: install it from its source repository"
                  " (pip install 'git+https://github.com/facebookresearch/detectron2.git')",
    "MultiScaleDeformableAttention": "a compiled extension of the project (its ops/ folder, built with CUDA):"
                                     " not on the package index; the harness's DEV009 fix lets the model import"
                                     " without it",
    "pytorch3d": "pytorch3d is built from its source repository (github.com/facebookresearch/pytorch3d)",
}


def missing_package_hint(exc: BaseException, root: Optional[str] = None) -> Optional[str]:
    """What to install for a ``ModuleNotFoundError`` (None for other errors)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    last = exc.name.split(".")[-1]
    own = set(_top_level_names(root)) if root and os.path.isdir(root) else set()
    if top in own or (last.startswith("_") and top not in PACKAGE_HINTS):
        return (f"missing module {exc.name!r} of the project itself: a compiled extension (build it from the"
                " project's sources as its install instructions say, e.g. `python setup.py build_ext --inplace`"
                " in its ops folder; a CUDA-only op needs a GPU machine) or a file missing from the tree; it is"
                " not on the package index")
    hint = PACKAGE_HINTS.get(top)
    if hint is None:
        hint = (f"pip install {top} (if the package index has no package of that name, the module comes from"
                " another package or only from a source repository: see the project's install instructions)")
    return f"missing package {top!r}: {hint}"


def _error(exc: BaseException, root: str) -> Dict[str, str]:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    err = {"type": type(exc).__name__, "text": f"{type(exc).__name__}: {first}", "where": _where(exc, root),
           "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])}
    hint = missing_package_hint(exc, root)
    if hint:
        err["hint"] = hint
    return err


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def grad_safe_image_list():
    """detectron2 0.6's ``ImageList.from_tensors`` pads several images by
    ``copy_`` into rows of one tensor; when the images require grad that in-place
    write into a view fails. While active, that case builds the same batch with
    ``F.pad`` + ``torch.stack`` (same values, same gradients); every other case
    is detectron2's own code. The project's files are not touched."""
    try:
        from detectron2.structures import image_list as il
    except ImportError:
        yield False
        return
    original = il.ImageList.__dict__["from_tensors"]
    orig_fn = original.__func__ if isinstance(original, staticmethod) else original

    def from_tensors(tensors, size_divisibility: int = 0, pad_value: float = 0.0, **kwargs):
        import torch
        import torch.nn.functional as F

        if (kwargs or len(tensors) < 2 or not any(t.requires_grad for t in tensors)
                or torch.jit.is_scripting() or torch.jit.is_tracing()):
            return orig_fn(tensors, size_divisibility, pad_value, **kwargs)
        image_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(s[0] for s in image_sizes)
        max_w = max(s[1] for s in image_sizes)
        if size_divisibility > 1:
            max_h = (max_h + size_divisibility - 1) // size_divisibility * size_divisibility
            max_w = (max_w + size_divisibility - 1) // size_divisibility * size_divisibility
        padded = [F.pad(t, [0, max_w - w, 0, max_h - h], value=pad_value) for t, (h, w) in zip(tensors, image_sizes)]
        return il.ImageList(torch.stack(padded).contiguous(), image_sizes)

    il.ImageList.from_tensors = staticmethod(from_tensors)
    try:
        yield True
    finally:
        il.ImageList.from_tensors = original


class _Capture:
    """Records the tensors the model builds: forward outputs of submodules, return values of methods."""

    def __init__(self, model, names: Sequence[str]):
        import torch

        self.items: List[Tuple[str, Any]] = []
        self.names: List[str] = []
        self._undo: List[Callable[[], None]] = []
        self.calls: Dict[str, int] = {}
        # by default: the top-level submodules, and one level down as a fallback for a
        # submodule the model reaches through other methods than forward (its hook never fires)
        self._fallback: Dict[str, List[Tuple[str, Any]]] = {}
        self.fallback_used: Dict[str, int] = {}
        default = not names
        if default:
            names = [n for n, _ in model.named_children()]
            for parent, child in model.named_children():
                for sub, grand in child.named_children():
                    self._fallback[parent] = []
                    self._undo.append(grand.register_forward_hook(self._fallback_hook(parent, f"{parent}.{sub}")).remove)
        for name in names:
            owner, attr = model, name
            if "." in name:
                path, attr = name.rsplit(".", 1)
                for part in path.split("."):
                    owner = getattr(owner, part)
            target = getattr(owner, attr)
            if isinstance(target, torch.nn.Module):
                self._undo.append(target.register_forward_hook(self._hook(name)).remove)
            elif callable(target):
                self._wrap(owner, attr, name, target)
            else:
                raise ValueError(f"--capture {name}: neither a submodule nor a method of the model")
            self.names.append(name)

    def _record(self, name: str, value: Any) -> None:
        n = self.calls.get(name, 0)
        self.calls[name] = n + 1
        from .tensors import flatten

        # flatten now: the model may delete entries of the dicts it returned
        self.items.extend(t for t in flatten(value, f"{name}#{n}", scalars=True) if t[1].is_floating_point())

    def _hook(self, name: str):
        def hook(module, args, output):
            self._record(name, output)

        return hook

    def _fallback_hook(self, parent: str, name: str):
        from .tensors import flatten

        def hook(module, args, output):
            if self.calls.get(parent):
                return  # the parent's own hook fires: its outputs are captured
            n = self.calls.get(name, 0)
            self.calls[name] = n + 1
            self._fallback[parent].extend(
                t for t in flatten(output, f"{name}#{n}", scalars=True) if t[1].is_floating_point())

        return hook

    def finish(self) -> None:
        """Add the one-level-down outputs of the top-level submodules whose own hook never fired."""
        for parent, items in self._fallback.items():
            if not self.calls.get(parent) and items:
                self.items.extend(items)
                self.fallback_used[parent] = len(items)
        self._fallback = {}

    def _wrap(self, owner, attr: str, name: str, method: Callable) -> None:
        def wrapper(*args, **kwargs):
            out = method(*args, **kwargs)
            self._record(name, out)
            return out

        setattr(owner, attr, wrapper)
        self._undo.append(lambda: delattr(owner, attr) if attr in vars(owner) else None)

    def close(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []
        self.finish()


def _mismatches(vd, root: str) -> List[Dict[str, Any]]:
    if vd is None:
        return []
    rows = []
    root = os.path.abspath(root) + os.sep
    for m in vd.summary():
        file = m.file
        if os.path.abspath(file).startswith(root):
            file = os.path.relpath(file, root)
        rows.append({"file": file, "line": m.line, "op": m.op, "devices": list(m.devices), "kind": m.kind,
                     "message": m.message, "count": m.count})
    return rows


def run(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one copy as ``spec`` says; return the result (also saved to ``spec['out']``).

    Keys of ``spec``: ``root`` (the copy), ``config``, ``candidates`` (set-ups
    to try: ``script``, ``setup`` (list of ``module:function``), ``imports``) or
    ``setup`` and ``imports``, ``opts``, ``device`` (``MODEL.DEVICE``),
    ``virtual`` (accelerator type to virtualise, or null), ``state`` (state
    dict file: loaded if it exists, else written), ``seed``, ``frames`` (null:
    the config's clip length), ``height``, ``width``, ``threads``, ``capture``
    (names, or empty for the model's top-level submodules), ``input_format``
    (``auto``/``image``/``video``), ``paths`` (``train``/``infer``),
    ``saliency`` (the extra gradient pass), ``out``.
    """
    import torch

    t_start = time.perf_counter()
    root = os.path.abspath(spec["root"])
    torch.set_num_threads(int(spec.get("threads") or 1))
    # TorchScript profiles a function's first calls and then runs an optimised
    # graph whose float results (gradients above all) differ in the last bits:
    # the same model would then compute differently in its first and second
    # run in one process. Without graph optimisation every call computes as
    # the first one does, in every process.
    torch._C._set_graph_executor_optimize(False)
    result: Dict[str, Any] = {"spec": spec, "sections": {s: [] for s in SECTIONS}, "errors": {}, "model": {},
                              "mismatches": {}, "seconds": {}, "facts": {}}
    sys.path.insert(0, root)
    vd = None
    try:
        t0 = time.perf_counter()
        try:
            cfg, cand, rejected = choose_setup(spec)
        except Exception as exc:
            result["errors"]["setup"] = _error(exc, root)
            return _finish(result, spec, t_start)
        result["facts"].update(setup_from=cand.get("script"), setup_functions=list(cand["setup"]),
                               registering_imports=list(cand.get("imports", [])), setups_rejected=rejected)
        result["seconds"]["import"] = time.perf_counter() - t0
        fmt, fmt_why = input_format(cfg, spec.get("input_format"))
        if spec.get("input_format_why"):
            fmt_why = spec["input_format_why"]
        frames = spec.get("frames")
        size = input_size(cfg, int(frames) if frames else None, int(spec["height"]), int(spec["width"]), fmt)
        classes = num_classes(cfg)
        result["facts"].update(size=size, num_classes=classes, class_counts=dict(_class_counts(cfg.MODEL)),
                               meta_architecture=cfg.MODEL.META_ARCHITECTURE, model_device=cfg.MODEL.DEVICE,
                               config_frames=config_frames(cfg), input_format=fmt, input_format_from=fmt_why)
        current = {"size": size}
        inputs_of = lambda: make_inputs(current["size"], classes, int(spec["seed"]), cfg)  # noqa: E731
        if spec.get("virtual"):
            from ..virtual import virtual_device

            vd = virtual_device(spec["virtual"], mode="report")
        ctx = vd if vd is not None else contextlib.nullcontext()
        t0 = time.perf_counter()
        with ctx:
            model = None
            try:
                from detectron2.modeling import build_model

                _seed(int(spec["seed"]))
                model = build_model(cfg)
            except Exception as exc:
                result["errors"]["build"] = _error(exc, root)
            if model is not None:
                try:
                    _load_state(model, spec, result)
                except Exception as exc:
                    result["errors"]["build"] = _error(exc, root)
                    model = None
        result["seconds"]["build"] = time.perf_counter() - t0
        if model is None:
            return _finish(result, spec, t_start)
        result["mismatches"]["build"] = _mismatches(vd, root)
        if vd is not None:
            vd.mismatches.clear()
        _run_paths(model, inputs_of, spec, result, cfg, current, root, ctx, vd)
    finally:
        if root in sys.path:
            sys.path.remove(root)
    return _finish(result, spec, t_start)


def _run_paths(model, inputs_of, spec, result, cfg, current, root, ctx, vd) -> None:
    """The training, inference and (optional) gradient passes, each under ``ctx``; an error is recorded."""
    paths = list(spec.get("paths", ("train", "infer")))
    if spec.get("saliency", True):
        paths.append("grad")
    for path in paths:
        t0 = time.perf_counter()
        with ctx:
            try:
                if path == "train" and (spec.get("input_format") or "auto") == "auto":
                    _train_either_format(model, inputs_of, spec, result, cfg, current, root)
                elif path == "train":
                    _train(model, inputs_of, spec, result)
                elif path == "infer":
                    _infer(model, inputs_of, spec, result)
                else:
                    _grad_pass(model, inputs_of, spec, result, root)
            except Exception as exc:
                result["errors"][path] = _error(exc, root)
        if path != "grad":
            # the optional pass's mismatches are the same code's as infer's and train's
            result["mismatches"][path] = _mismatches(vd, root)
        if vd is not None:
            vd.mismatches.clear()
        result["seconds"][path] = time.perf_counter() - t0


def _load_state(model, spec, result) -> None:
    import collections

    import torch

    state_file = spec.get("state")
    sd = model.state_dict()
    result["model"] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameter_tensors": sum(1 for _ in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "state_tensors": len(sd),
    }
    wait = float(spec.get("state_wait") or 0)
    t0 = time.perf_counter()
    failed = (state_file or "") + ".failed"
    while (state_file and wait and not os.path.isfile(state_file) and not os.path.isfile(failed)
           and time.perf_counter() - t0 < wait):
        time.sleep(0.2)  # another process is writing it (atomically)
    if state_file and wait and not os.path.isfile(state_file):
        if not os.path.isfile(failed):
            raise RuntimeError(f"no shared weights file {state_file}: it did not appear within {wait:g} s")
        # the other copy could not build its model: keep this process's own seeded weights
        result["facts"]["weights_note"] = "the process meant to write the shared weights failed; own seeded weights"
        state_file = None
    if state_file and os.path.isfile(state_file):
        ref = torch.load(state_file, map_location="cpu", weights_only=True)
        result["facts"]["weights_equal_before_load"] = list(ref) == list(sd) and all(
            torch.equal(ref[k], sd[k].detach().to("cpu")) for k in ref)
        load_shared_state(model, ref)
        result["facts"]["state_loaded_from"] = state_file
    elif state_file:
        tmp = state_file + f".{os.getpid()}.part"
        out = collections.OrderedDict((k, v.detach().to("cpu", copy=True)) for k, v in sd.items())
        # the version of each module's layout: without it, modules with a newer
        # _version (Mask2Former's heads) rename the keys on load as if they were old
        meta = getattr(sd, "_metadata", None)
        if meta is not None:
            out._metadata = type(meta)((k, dict(v)) for k, v in meta.items())
        torch.save(out, tmp)
        os.replace(tmp, state_file)
        result["facts"]["state_written_to"] = state_file
    if state_file:
        result["sections"]["state"] = [(k, tensor_digest(v)) for k, v in model.state_dict().items()]
        result["facts"]["state_elements"] = sum(v.numel() for v in model.state_dict().values())


class StateMismatch(RuntimeError):
    """The shared weights do not fit the model: names the keys."""


def load_shared_state(model, ref) -> None:
    """``model.load_state_dict(ref)``; a failure names the missing and unexpected keys."""
    try:
        model.load_state_dict(ref)
        return
    except RuntimeError as exc:
        first = exc
    got = set(model.state_dict())
    missing = sorted(got - set(ref))
    unexpected = sorted(set(ref) - got)
    if getattr(ref, "_metadata", None) is None:
        why = " (the weights file has no state_dict()._metadata: modules renamed keys by version on load)"
    else:
        why = ""
    detail = f"{len(missing)} missing key(s) {missing[:8]}, {len(unexpected)} unexpected key(s) {unexpected[:8]}"
    if not missing and not unexpected:
        detail = str(first).splitlines()[-1].strip() if str(first).strip() else "shapes differ"
    raise StateMismatch(f"the shared weights do not load into {type(model).__name__}: {detail}{why}") from first


def _train_either_format(model, inputs_of, spec, result, cfg, current, root) -> None:
    """Training in the format the config points to; when the model does not take it
    (an error that is not a device error), the other format (image <-> video) once.
    The format that runs is kept for the rest of the process (:func:`run_all`)."""
    import torch

    from .runner import DEVICE_ERROR

    # a forward that fails half-way may have moved running statistics (BatchNorm):
    # put them back, so that this run's model is the one the other runs have
    saved = [(b, b.detach().clone()) for _, b in model.named_buffers()]
    try:
        _train(model, inputs_of, spec, result)
        return
    except Exception as exc:
        first = exc
        if DEVICE_ERROR.search(f"{type(exc).__name__}: {exc}"):
            raise
    with torch.no_grad():
        for b, v in saved:
            if b.shape == v.shape:
                b.copy_(v)
    del saved
    facts = result["facts"]
    size = current["size"]
    other = "image" if size["format"] == "video" else "video"
    frames = spec.get("frames")
    current["size"] = input_size(cfg, int(frames) if frames else None, int(spec["height"]), int(spec["width"]), other)
    try:
        _train(model, inputs_of, spec, result)
    except Exception:
        current["size"] = size  # neither runs: the first format and its error stand
        raise first
    e = _error(first, root)
    facts.update(size=current["size"], input_format=other, input_format_from=(
        f"{other} inputs, because the model did not take {size['format']} inputs ({facts.get('input_format_from')}):"
        f" {e['text']} at {e['where']}"))


def _train(model, inputs_of, spec, result) -> None:
    """Training as a user runs it: the mapper's uint8 frames, ``train()``, the
    sum of the losses, backward."""
    from .tensors import detach_all, flatten

    model.train()
    model.zero_grad(set_to_none=True)
    _seed(int(spec["seed"]) + 1)
    inputs = inputs_of()
    losses = model(inputs)
    if not isinstance(losses, dict):
        raise TypeError(f"the model returned {type(losses).__name__} in training, not a dict of losses")
    objective = sum(v for v in losses.values())
    result["facts"]["losses"] = len(losses)
    objective.backward()
    grads, none = [], []
    for name, p in model.named_parameters():
        if p.grad is not None:
            grads.append((name, p.grad))
        elif p.requires_grad:
            none.append(name)
    result["facts"]["train_objective"] = float(objective.detach())
    result["facts"]["params_without_grad"] = len(none)
    result["facts"]["params_without_grad_examples"] = none[:10]
    items = flatten(losses, "loss", scalars=True) + [("objective", objective)]
    result["sections"]["train"] = detach_all(items)
    result["sections"]["train_grads"] = detach_all(grads)
    model.zero_grad(set_to_none=True)


def _infer(model, inputs_of, spec, result) -> None:
    """Inference as detectron2's evaluator runs it: ``eval()`` under ``torch.no_grad()``."""
    import torch

    from .tensors import detach_all, flatten

    model.eval()
    _seed(int(spec["seed"]) + 2)
    inputs = inputs_of()
    cap = _Capture(model, spec.get("capture") or [])
    result["facts"]["captured_from"] = cap.names
    try:
        with torch.no_grad():
            outputs = model(inputs)
    finally:
        cap.close()
    result["sections"]["infer"] = detach_all(flatten(outputs, "out", scalars=True))
    result["frames"] = [f.detach().to("cpu", copy=True) for f in frames_of(inputs)]
    result["facts"]["captured_tensors"] = len(cap.items)
    result["facts"]["captured_calls"] = dict(cap.calls)
    result["facts"]["captured_silent"] = [n for n in cap.names if not cap.calls.get(n)]
    result["facts"]["captured_one_level_down"] = dict(cap.fallback_used)
    result["sections"]["captured"] = detach_all(cap.items)


def _grad_pass(model, inputs_of, spec, result, root) -> None:
    """The optional gradient pass: float frames that require grad, then the input
    gradients of the training objective and the saliency of the inference path.
    Each part that cannot be taken says why (``facts['saliency']``,
    ``facts['train_input_grad_note']``); none of it fails a run."""
    import torch

    from .tensors import detach_all

    def grad_inputs():
        inputs = inputs_of()
        # float frames holding the mapper's uint8 values: the same numbers reach the
        # model, and the harness can see whether a gradient flows back to them
        frames = [f.to(torch.float32).requires_grad_(True) for f in frames_of(inputs)]
        set_frames(inputs, frames)
        return inputs, frames

    # training path: input gradients
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        _seed(int(spec["seed"]) + 1)
        inputs, frames = grad_inputs()
        with grad_safe_image_list():
            losses = model(inputs)
        sum(v for v in losses.values()).backward()
        in_grads = [(f"d_objective/d_frame[{i}]", f.grad) for i, f in enumerate(frames) if f.grad is not None]
        if not in_grads:
            result["facts"]["train_input_grad_note"] = (
                "no gradient reaches the input frames on the training path (.grad is None after backward): "
                "the model computes its features from them without autograd (e.g. under torch.no_grad())")
        result["sections"]["train_input_grads"] = detach_all(in_grads)
    except Exception as exc:
        e = _error(exc, root)
        result["facts"]["train_input_grad_note"] = f"not available: {e['text']} at {e['where']}"
    finally:
        model.zero_grad(set_to_none=True)

    # inference path: saliency of the captured tensors
    try:
        model.eval()
        _seed(int(spec["seed"]) + 2)
        inputs, frames = grad_inputs()
        cap = _Capture(model, spec.get("capture") or [])
        try:
            with torch.enable_grad(), grad_safe_image_list():
                model(inputs)
        finally:
            cap.close()
        differentiable = [(n, t) for n, t in cap.items if t.requires_grad]
        result["facts"]["captured_differentiable"] = len(differentiable)
        if not differentiable:
            result["facts"]["saliency"] = ("not available: no captured tensor depends on the input frames (the"
                                           " model infers without autograd, or the captures saw nothing)")
            return
        objective = sum(t.float().mean() for _, t in differentiable)
        grads = torch.autograd.grad(objective, frames, allow_unused=True)
        sal = [(f"d_objective/d_frame[{i}]", g if g is not None else torch.zeros_like(f))
               for i, (f, g) in enumerate(zip(frames, grads))]
        result["facts"]["saliency_objective"] = float(objective.detach())
        result["facts"]["saliency_frames_unused"] = [i for i, g in enumerate(grads) if g is None]
        result["sections"]["saliency"] = detach_all(sal)
    except Exception as exc:
        e = _error(exc, root)
        result["facts"]["saliency"] = f"not available: {e['text']} at {e['where']}"


def _finish(result: Dict[str, Any], spec: Dict[str, Any], t_start: float) -> Dict[str, Any]:
    import torch

    from ..virtual import to_real

    result["seconds"]["total"] = time.perf_counter() - t_start
    for items in result["sections"].values():
        to_real([t for _, t in items])
    out = spec.get("out")
    if out:
        tmp = out + ".part"
        torch.save(result, tmp)
        os.replace(tmp, out)
    return result


def run_all(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Several runs of one copy in this process, one after the other.

    ``spec['runs']`` is a list of objects whose keys (``role``, ``device``,
    ``virtual``, ``out``, ``state``...) override the shared keys of ``spec``
    for that run. The copy is imported once; each run builds its own model
    (and its own virtual device).
    """
    shared = {k: v for k, v in spec.items() if k != "runs"}
    results = []
    for one in spec.get("runs") or [{}]:
        merged = dict(shared)
        merged.update(one)
        if results and results[0].get("facts", {}).get("input_format") and (spec.get("input_format") or "auto") == "auto":
            # every run of the process takes the inputs the first one settled on
            merged["input_format"] = results[0]["facts"]["input_format"]
            merged["input_format_why"] = results[0]["facts"].get("input_format_from")
        try:
            results.append(run(merged))
        except Exception as exc:  # a harness bug: still leave a result that says so
            result = {"spec": merged, "sections": {}, "errors": {"process": _error(exc, merged["root"])},
                      "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}
            results.append(_finish(result, merged, time.perf_counter()))
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m flake8_device.harness.d2 SPEC.json", file=sys.stderr)
        return 2
    import warnings

    warnings.simplefilter("ignore")
    with open(args[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    run_all(spec)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
