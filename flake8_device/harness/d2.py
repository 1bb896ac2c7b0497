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

1. puts the copy's root first on ``sys.path``, imports the modules that
   register the model (those its training script imports) and builds the
   config with the project's ``add_*_config`` functions, then the config
   file, then ``opts``; ``MODEL.WEIGHTS`` is emptied and ``MODEL.DEVICE`` set;
2. seeds Python, NumPy and torch, builds the model with detectron2's
   ``build_model(cfg)`` and loads the shared state dict file (the first run
   writes it), so every process holds the same random weights;
3. **train**: synthetic video inputs in the format of the project's video
   dataset mapper, ``sum(loss_dict.values())``, backward; records every loss,
   the objective and every parameter gradient;
4. **infer**: the same frames as float tensors that require grad, ``eval()``
   forward; records the outputs (Python numbers become tensors) and the
   tensors the model builds on the way (forward outputs of its top-level
   submodules, or the ``capture`` names), then the gradient of the sum of the
   captured tensors' means with respect to each input frame (the saliency).
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


def find_training_script(root: str) -> Optional[str]:
    """The project's training script: ``train_net*.py`` or ``train*.py`` at its root."""
    candidates = sorted(f for f in os.listdir(root) if f.endswith(".py") and f.startswith("train"))
    candidates.sort(key=lambda f: (not f.startswith("train_net"), len(f), f))
    return os.path.join(root, candidates[0]) if candidates else None


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
    calls: List[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "setup":
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and _SETUP_CALL.match(sub.func.id):
                    spec = bound.get(sub.func.id)
                    if spec is None:
                        raise ValueError(f"{script}: setup() calls {sub.func.id} but the script does not import it")
                    if spec not in calls:
                        calls.append(spec)
    if not calls:
        raise ValueError(f"{script}: no setup() calling add_*_config functions; name them with --setup")
    calls.sort(key=lambda s: _call_position(tree, s.split(":")[1]))
    return {"setup": calls, "imports": imported}


def _call_position(tree: ast.AST, name: str) -> Tuple[int, int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
            return node.lineno, node.col_offset
    return (1 << 30, 0)


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


# --------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------


def input_size(cfg, frames: int, height: int, width: int) -> Dict[str, int]:
    """Frame count and size, height and width rounded up to the model's size divisibility."""
    div = 1
    for key in ("MASK_FORMER.SIZE_DIVISIBILITY", "BACKBONE.SIZE_DIVISIBILITY"):
        node = cfg.MODEL
        try:
            for part in key.split("."):
                node = getattr(node, part)
            div = max(div, int(node))
        except AttributeError:
            continue
    h = -(-height // div) * div
    w = -(-width // div) * div
    return {"frames": frames, "height": h, "width": w, "divisibility": div,
            "channels": len(cfg.MODEL.PIXEL_MEAN)}


def num_classes(cfg) -> int:
    for path in ("SEM_SEG_HEAD.NUM_CLASSES", "ROI_HEADS.NUM_CLASSES", "RETINANET.NUM_CLASSES"):
        node = cfg.MODEL
        try:
            for part in path.split("."):
                node = getattr(node, part)
            return int(node)
        except AttributeError:
            continue
    return 1


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
    h.update(c.view(torch.uint8).numpy().tobytes() if c.numel() else b"")
    return torch.tensor(list(h.digest()), dtype=torch.uint8)


def _where(exc: BaseException, root: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    root = os.path.abspath(root) + os.sep
    for fr in reversed(frames):
        fn = os.path.abspath(fr.filename)
        if fn.startswith(root):
            return f"{os.path.relpath(fn, root)}:{fr.lineno}: {(fr.line or '').strip()}"
    if frames:
        fr = frames[-1]
        return f"{fr.filename}:{fr.lineno}: {(fr.line or '').strip()}"
    return ""


def _error(exc: BaseException, root: str) -> Dict[str, str]:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return {"type": type(exc).__name__, "text": f"{type(exc).__name__}: {first}", "where": _where(exc, root),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])}


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
        if not names:
            names = [n for n, _ in model.named_children()]
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
        self.calls: Dict[str, int] = {}

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

    Keys of ``spec``: ``root`` (the copy), ``config``, ``setup`` (list of
    ``module:function``), ``imports`` (modules to import first), ``opts``,
    ``device`` (``MODEL.DEVICE``), ``virtual`` (accelerator type to
    virtualise, or null), ``state`` (state dict file: loaded if it exists,
    else written), ``seed``, ``frames``, ``height``, ``width``, ``threads``,
    ``capture`` (names, or empty for the model's top-level submodules),
    ``paths`` (``train``/``infer``), ``out``.
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
            for mod in spec.get("imports", []):
                importlib.import_module(mod)
            cfg = build_cfg(spec)
        except Exception as exc:
            result["errors"]["setup"] = _error(exc, root)
            return _finish(result, spec, t_start)
        result["seconds"]["import"] = time.perf_counter() - t0
        size = input_size(cfg, int(spec["frames"]), int(spec["height"]), int(spec["width"]))
        classes = num_classes(cfg)
        result["facts"].update(size=size, num_classes=classes, meta_architecture=cfg.MODEL.META_ARCHITECTURE,
                               model_device=cfg.MODEL.DEVICE, config_frames=cfg.INPUT.get("SAMPLING_FRAME_NUM"))
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
        for path in spec.get("paths", ("train", "infer")):
            t0 = time.perf_counter()
            with ctx:
                try:
                    if path == "train":
                        _train(model, size, classes, spec, result)
                    else:
                        _infer(model, size, classes, spec, result)
                except Exception as exc:
                    result["errors"][path] = _error(exc, root)
            result["mismatches"][path] = _mismatches(vd, root)
            if vd is not None:
                vd.mismatches.clear()
            result["seconds"][path] = time.perf_counter() - t0
    finally:
        if root in sys.path:
            sys.path.remove(root)
    return _finish(result, spec, t_start)


def _load_state(model, spec, result) -> None:
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
        model.load_state_dict(ref)
        result["facts"]["state_loaded_from"] = state_file
    elif state_file:
        tmp = state_file + f".{os.getpid()}.part"
        torch.save({k: v.detach().to("cpu", copy=True) for k, v in sd.items()}, tmp)
        os.replace(tmp, state_file)
        result["facts"]["state_written_to"] = state_file
    if state_file:
        result["sections"]["state"] = [(k, tensor_digest(v)) for k, v in model.state_dict().items()]
        result["facts"]["state_elements"] = sum(v.numel() for v in model.state_dict().values())


def _train(model, size, classes, spec, result) -> None:
    import torch

    from .tensors import detach_all, flatten

    model.train()
    model.zero_grad(set_to_none=True)
    _seed(int(spec["seed"]) + 1)
    inputs = video_inputs(size, classes, int(spec["seed"]))
    # float frames holding the mapper's uint8 values: the same numbers reach the
    # model, and the harness can see whether a gradient flows back to them
    frames = [f.to(torch.float32).requires_grad_(True) for f in inputs[0]["image"]]
    inputs[0]["image"] = frames
    with grad_safe_image_list():
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
    in_grads = [(f"d_objective/d_frame[{i}]", f.grad) for i, f in enumerate(frames) if f.grad is not None]
    if not in_grads:
        result["facts"]["train_input_grad_note"] = (
            "no gradient reaches the input frames on the training path (.grad is None after backward): "
            "the model computes its features from them without autograd (e.g. under torch.no_grad())")
    items = flatten(losses, "loss", scalars=True) + [("objective", objective)]
    result["sections"]["train"] = detach_all(items)
    result["sections"]["train_grads"] = detach_all(grads)
    result["sections"]["train_input_grads"] = detach_all(in_grads)
    model.zero_grad(set_to_none=True)


def _infer(model, size, classes, spec, result) -> None:
    import torch

    from .tensors import detach_all, flatten

    model.eval()
    _seed(int(spec["seed"]) + 2)
    inputs = video_inputs(size, classes, int(spec["seed"]))
    frames = [f.to(torch.float32).requires_grad_(True) for f in inputs[0]["image"]]
    inputs[0]["image"] = frames
    cap = _Capture(model, spec.get("capture") or [])
    result["facts"]["captured_from"] = cap.names
    try:
        with grad_safe_image_list():
            outputs = model(inputs)
    finally:
        cap.close()
    result["sections"]["infer"] = detach_all(flatten(outputs, "out", scalars=True))
    result["frames"] = [f.detach().to("cpu", copy=True) for f in frames]
    differentiable = [(n, t) for n, t in cap.items if t.requires_grad]
    result["facts"]["captured_tensors"] = len(cap.items)
    result["facts"]["captured_differentiable"] = len(differentiable)
    result["sections"]["captured"] = detach_all(cap.items)
    if not differentiable:
        result["facts"]["saliency"] = "no captured tensor depends on the input frames"
        return
    objective = sum(t.float().mean() for _, t in differentiable)
    grads = torch.autograd.grad(objective, frames, allow_unused=True)
    sal = []
    for i, (f, g) in enumerate(zip(frames, grads)):
        sal.append((f"d_objective/d_frame[{i}]", g if g is not None else torch.zeros_like(f)))
    result["facts"]["saliency_objective"] = float(objective.detach())
    result["facts"]["saliency_frames_unused"] = [i for i, g in enumerate(grads) if g is None]
    result["sections"]["saliency"] = detach_all(sal)


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
