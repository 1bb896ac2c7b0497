"""Entry points used by tests and the equivalence harness.

Every device here comes from the caller; the model code decides the rest.
"""
import os

import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from .config import add_dvis_daq_config
from .meta_architecture import DVISDAQToy

CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.yaml")


def get_cfg_for_model():
    """detectron2 config of the bundled model, loaded from config.yaml."""
    cfg = get_cfg()
    add_dvis_daq_config(cfg)
    cfg.merge_from_file(CONFIG_PATH)
    # This copy of the package registered its class under this name.
    cfg.MODEL.META_ARCHITECTURE = DVISDAQToy.registry_name
    return cfg


def build(cfg=None, device="cpu", train=False):
    """Build the model with ``detectron2.modeling.build_model`` on ``device``.

    Weights are random but fixed by cfg.MODEL.DVIS_DAQ.SEED; they are created on
    the CPU before the model is moved, so every device gets the same values.
    The global RNG state is left untouched. Returns the model in train mode when
    ``train`` is true, else in eval mode.
    """
    cfg = get_cfg_for_model() if cfg is None else cfg.clone()
    cfg.MODEL.META_ARCHITECTURE = DVISDAQToy.registry_name
    cfg.MODEL.DEVICE = str(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.MODEL.DVIS_DAQ.SEED)
        model = build_model(cfg)
    model.train(bool(train))
    return model


def _frame_objects(num_frames, size, gen):
    """Boxes of a few objects drifting across the clip; the last one leaves before the end."""
    objects = []
    for k in range(3):
        h = int(torch.randint(size // 6, size // 3, (1,), generator=gen))
        w = int(torch.randint(size // 6, size // 3, (1,), generator=gen))
        y = int(torch.randint(0, size - h - num_frames * 2, (1,), generator=gen))
        x = int(torch.randint(0, size - w - num_frames * 2, (1,), generator=gen))
        cls = int(torch.randint(0, 5, (1,), generator=gen))
        last = num_frames if k < 2 else max(num_frames - 1, 1)
        objects.append({"id": k, "cls": cls, "box": (y, x, h, w), "last": last})
    return objects


def make_inputs(num_frames=3, size=64, seed=0, with_targets=True, device="cpu", num_videos=1):
    """detectron2-style batched inputs: one dict per video.

    Each dict has "image" (list of float32 CHW frames in [0, 255], leaf tensors
    on ``device`` that the caller may set requires_grad on), "height", "width"
    and, with ``with_targets``, "instances" (one Instances per frame with
    gt_classes, gt_masks (BitMasks) and gt_ids, -1 for an object not visible).
    """
    # Drawn on the host with a seeded generator, so every device gets the same clip.
    gen = torch.Generator().manual_seed(seed)
    videos = []
    for _ in range(num_videos):
        objects = _frame_objects(num_frames, size, gen)
        frames, instances = [], []
        for t in range(num_frames):
            img = torch.rand((3, size, size), generator=gen, device="cpu") * 60.0
            masks, classes, ids = [], [], []
            for obj in objects:
                y, x, h, w = obj["box"]
                y, x = y + 2 * t, x + t
                m = torch.zeros((size, size), dtype=torch.bool, device="cpu")
                visible = t < obj["last"]
                if visible:
                    m[y : y + h, x : x + w] = True
                    color = torch.tensor(
                        [40.0 * (obj["cls"] + 1), 200.0 - 30.0 * obj["cls"], 90.0 + 25.0 * obj["id"]], device="cpu"
                    )
                    img[:, m] = color[:, None]
                masks.append(m)
                classes.append(obj["cls"])
                ids.append(obj["id"] if visible else -1)
            frames.append(img.to(device))
            inst = Instances((size, size))
            inst.gt_classes = torch.tensor(classes, dtype=torch.int64, device=device)
            inst.gt_ids = torch.tensor(ids, dtype=torch.int64, device=device)
            inst.gt_masks = BitMasks(torch.stack(masks).to(device))
            instances.append(inst)
        video = {"image": frames, "height": size, "width": size}
        if with_targets:
            video["instances"] = instances
        videos.append(video)
    return videos


def input_frames(batched_inputs):
    """All frame tensors of ``batched_inputs``, in order (to set requires_grad / read .grad)."""
    return [frame for video in batched_inputs for frame in video["image"]]


def scalar_objective(outputs):
    """Reduce model outputs to one scalar for backward.

    Training outputs (a dict of losses) sum; inference outputs (a list of
    per-video predictions) add each video's scores and mean mask probability.
    """
    if isinstance(outputs, dict):
        return sum(outputs[k] for k in sorted(outputs))
    total = 0.0
    for result in outputs:
        if len(result["pred_scores"]) == 0:
            continue
        total = total + result["pred_scores"].sum() + result["pred_mask_probs"].mean()
    return total
