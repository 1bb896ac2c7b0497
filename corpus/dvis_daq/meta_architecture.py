"""DVIS-DAQ-style video instance segmentation meta-architecture (detectron2)."""
import logging

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList

from .backbone import TinyBackbone, TinyPixelDecoder
from .losses import classification_loss, dice_loss, sigmoid_bce_loss
from .matcher import FrameMatcher
from .segmenter import FrameSegmenter
from .track_module import DAQTracker

logger = logging.getLogger(__name__)


def _register(cls):
    """Register ``cls`` in META_ARCH_REGISTRY and remember the name used.

    The plain class name is used when free. A second copy of this package
    (imported under another name) registers under a name qualified by its
    module, so each copy builds its own class.
    """
    name = cls.__name__
    if name in META_ARCH_REGISTRY:
        name = "{}@{}".format(cls.__name__, cls.__module__)
    if name in META_ARCH_REGISTRY:
        # The same module imported again (e.g. reloaded): point at the new class.
        META_ARCH_REGISTRY._obj_map[name] = cls
    else:
        META_ARCH_REGISTRY._do_register(name, cls)
    cls.registry_name = name
    return cls


class DVISDAQToy(nn.Module):
    """Per-frame Mask2Former-like segmenter followed by a DAQ-like tracker."""

    @configurable
    def __init__(
        self,
        *,
        backbone,
        pixel_decoder,
        sem_seg_head,
        tracker,
        matcher,
        pixel_mean,
        pixel_std,
        size_divisibility,
        mask_stride,
        loss_weights,
        no_object_weight,
        max_num,
        apply_padding_masks,
    ):
        super().__init__()
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.sem_seg_head = sem_seg_head
        self.tracker = tracker
        self.matcher = matcher
        self.size_divisibility = size_divisibility
        self.mask_stride = mask_stride
        self.loss_weights = dict(loss_weights)
        self.no_object_weight = no_object_weight
        self.max_num = max_num
        self.apply_padding_masks = apply_padding_masks
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        d = cfg.MODEL.DVIS_DAQ
        backbone = TinyBackbone(3, tuple(d.BACKBONE_CHANNELS))
        return {
            "backbone": backbone,
            "pixel_decoder": TinyPixelDecoder(backbone.output_shape(), d.HIDDEN_DIM),
            "sem_seg_head": FrameSegmenter(
                hidden_dim=d.HIDDEN_DIM,
                num_classes=d.NUM_CLASSES,
                num_queries=d.NUM_QUERIES,
                nheads=d.NHEADS,
                dim_feedforward=d.DIM_FEEDFORWARD,
                dec_layers=d.DEC_LAYERS,
            ),
            "tracker": DAQTracker(
                hidden_dim=d.HIDDEN_DIM,
                num_classes=d.NUM_CLASSES,
                nheads=d.NHEADS,
                dim_feedforward=d.DIM_FEEDFORWARD,
                max_sequences=d.TRACKER.MAX_SEQUENCES,
                pos_chunk_size=d.TRACKER.POS_CHUNK_SIZE,
                disappear_thresh=d.TRACKER.DISAPPEAR_THRESH,
            ),
            "matcher": FrameMatcher(d.CLASS_WEIGHT, d.MASK_WEIGHT, d.DICE_WEIGHT),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "size_divisibility": d.SIZE_DIVISIBILITY,
            "mask_stride": d.MASK_STRIDE,
            "loss_weights": {
                "ce": d.CLASS_WEIGHT,
                "mask": d.MASK_WEIGHT,
                "dice": d.DICE_WEIGHT,
                "disappear": d.DISAPPEAR_WEIGHT,
            },
            "no_object_weight": d.NO_OBJECT_WEIGHT,
            "max_num": d.TEST.MAX_NUM,
            "apply_padding_masks": d.TEST.APPLY_PADDING_MASKS,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    # ------------------------------------------------------------------ shared
    def preprocess_image(self, batched_inputs):
        """Normalise every frame and pad each clip to the size divisibility.

        Frames of a clip share one size, so ImageList pads whole clips
        ([T, 3, H, W] each); the result is flattened to one frame batch.
        """
        clips = []
        for video in batched_inputs:
            frames = [(frame.to(self.device) - self.pixel_mean) / self.pixel_std for frame in video["image"]]
            clips.append(torch.stack(frames, dim=0))
        padded = ImageList.from_tensors(clips, self.size_divisibility)
        image_sizes = [size for size, clip in zip(padded.image_sizes, clips) for _ in range(clip.shape[0])]
        return ImageList(padded.tensor.flatten(0, 1), image_sizes)

    def encode(self, images_tensor):
        features = self.backbone(images_tensor)
        mask_features, memory = self.pixel_decoder(features)
        outputs = self.sem_seg_head(mask_features, memory)
        outputs["mask_features"] = mask_features
        return outputs

    def forward(self, batched_inputs):
        if self.training:
            return self.forward_train(batched_inputs)
        return self.forward_offline_mode(batched_inputs)

    # ---------------------------------------------------------------- training
    def prepare_targets(self, video, pad_shape):
        """Per frame: classes, ids and masks (at mask-feature resolution) of visible instances."""
        targets = []
        for inst in video["instances"]:
            inst = inst.to(self.device)
            gt_masks = inst.gt_masks
            gt_masks = gt_masks.tensor if hasattr(gt_masks, "tensor") else gt_masks
            keep = inst.gt_ids >= 0
            gt_masks = gt_masks[keep].to(torch.float32)
            padded = torch.zeros((gt_masks.shape[0], 1) + tuple(pad_shape), device=gt_masks.device)
            padded[:, 0, : gt_masks.shape[1], : gt_masks.shape[2]] = gt_masks
            small = F.avg_pool2d(padded, self.mask_stride)[:, 0] >= 0.5
            targets.append(
                {
                    "classes": inst.gt_classes[keep],
                    "ids": inst.gt_ids[keep].tolist(),
                    "masks": small.to(torch.float32),
                }
            )
        return targets

    def forward_train(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        num_frames = len(batched_inputs[0]["image"])
        outputs = self.encode(images.tensor)
        num_classes = self.sem_seg_head.num_classes
        sums = {k: 0.0 for k in ("ce", "mask", "dice", "track_ce", "track_mask", "track_dice", "disappear")}
        for v, video in enumerate(batched_inputs):
            targets = self.prepare_targets(video, images.tensor.shape[-2:])
            self.tracker.reset()
            for t in range(num_frames):
                n = v * num_frames + t
                logits = outputs["pred_logits"][n]
                masks = outputs["pred_masks"][n]
                tgt = targets[t]

                # Per-frame segmentation loss on Hungarian-matched queries.
                query_idx, gt_idx = self.matcher(logits, masks, tgt["classes"], tgt["masks"])
                query_idx = query_idx.to(self.device)
                gt_idx = gt_idx.to(self.device)
                target_classes = torch.full(
                    (logits.shape[0],), num_classes, dtype=torch.int64, device=logits.device
                )
                target_classes[query_idx] = tgt["classes"][gt_idx]
                sums["ce"] = sums["ce"] + classification_loss(logits, target_classes, num_classes, self.no_object_weight)
                num_masks = max(len(gt_idx), 1)
                if len(gt_idx) > 0:
                    src, dst = masks[query_idx], tgt["masks"][gt_idx]
                    sums["mask"] = sums["mask"] + sigmoid_bce_loss(src, dst, num_masks)
                    sums["dice"] = sums["dice"] + dice_loss(src, dst, num_masks)

                # Tracker loss on the activated queries.
                cand_gt_ids = [-1] * logits.shape[0]
                for q, g in zip(query_idx.tolist(), gt_idx.tolist()):
                    cand_gt_ids[q] = tgt["ids"][g]
                track = self.tracker.forward_frame(
                    outputs["pred_embds"][n],
                    masks,
                    outputs["mask_features"][n],
                    t,
                    num_frames,
                    frame_targets={"cand_gt_ids": cand_gt_ids, "present_ids": set(tgt["ids"])},
                )
                sums = self.add_track_losses(sums, track, tgt)
            self.tracker.reset()  # drop the sequences (and the graph they hold)
        denom = float(len(batched_inputs) * num_frames)
        w = self.loss_weights
        return {
            "loss_ce": w["ce"] * sums["ce"] / denom,
            "loss_mask": w["mask"] * sums["mask"] / denom,
            "loss_dice": w["dice"] * sums["dice"] / denom,
            "loss_track_ce": w["ce"] * sums["track_ce"] / denom,
            "loss_track_mask": w["mask"] * sums["track_mask"] / denom,
            "loss_track_dice": w["dice"] * sums["track_dice"] / denom,
            "loss_disappear": w["disappear"] * sums["disappear"] / denom,
        }

    def add_track_losses(self, sums, track, tgt):
        num_classes = self.sem_seg_head.num_classes
        activated = track["activated"].tolist()
        target_ids = track["target_ids"].tolist()
        rows = [q for q, a in enumerate(activated) if a]
        if rows:
            classes, mask_rows, mask_gt = [], [], []
            for q in rows:
                gid = target_ids[q]
                if gid in tgt["ids"]:
                    g = tgt["ids"].index(gid)
                    classes.append(int(tgt["classes"][g]))
                    mask_rows.append(q)
                    mask_gt.append(g)
                else:
                    classes.append(num_classes)
            rows_t = torch.as_tensor(rows, dtype=torch.int64, device=track["logits"].device)
            classes_t = torch.as_tensor(classes, dtype=torch.int64, device=track["logits"].device)
            sums["track_ce"] = sums["track_ce"] + classification_loss(
                track["logits"][rows_t], classes_t, num_classes, self.no_object_weight
            )
            if mask_rows:
                src = track["masks"][torch.as_tensor(mask_rows, device=track["masks"].device)]
                dst = tgt["masks"][torch.as_tensor(mask_gt, device=tgt["masks"].device)]
                sums["track_mask"] = sums["track_mask"] + sigmoid_bce_loss(src, dst, len(mask_rows))
                sums["track_dice"] = sums["track_dice"] + dice_loss(src, dst, len(mask_rows))
        gt_ids = track["tracked_gt_ids"]
        if gt_ids:
            gone = [float(g not in tgt["ids"]) for g in gt_ids]
            gone_t = torch.tensor(gone, device=track["disappear_logits"].device)
            sums["disappear"] = sums["disappear"] + F.binary_cross_entropy_with_logits(
                track["disappear_logits"], gone_t
            )
        return sums

    # --------------------------------------------------------------- inference
    def common_inference(self, frames, to_store="cuda"):
        """Segment and track every frame of one video; per-frame masks go to ``to_store``."""
        outputs = self.encode(frames)
        if frames.is_cuda:
            torch.cuda.synchronize(frames.device)
        self.tracker.reset()
        num_frames = frames.shape[0]
        store = {}
        for t in range(num_frames):
            track = self.tracker.forward_frame(
                outputs["pred_embds"][t], outputs["pred_masks"][t], outputs["mask_features"][t], t, num_frames
            )
            for row, seq_id, visible in zip(track["kept"], track["seq_ids"], track["visible"]):
                entry = store.setdefault(seq_id, {"start": t, "logits": {}, "masks": {}, "visible": {}})
                entry["logits"][t] = track["logits"][row]
                entry["masks"][t] = track["masks"][row].to(to_store)
                entry["visible"][t] = visible
        self.tracker.reset()
        return {"sequences": store, "num_frames": num_frames}

    def common_inference_with_fallback(self, frames):
        """Run common_inference keeping masks on the GPU; on out-of-memory, retry storing on the CPU."""
        try:
            return self.common_inference(frames, to_store="cuda")
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            if "out of memory" not in str(e):
                raise
            backend = "cuda" if torch.cuda.is_available() else "cpu"
            logger.warning("%s ran out of memory during inference; storing masks on the cpu", backend)
            torch.cuda.empty_cache()
            return self.common_inference(frames, to_store="cpu")

    def forward_offline_mode(self, batched_inputs, to_store="cuda"):
        images = self.preprocess_image(batched_inputs)
        num_frames = len(batched_inputs[0]["image"])
        results = []
        for v, video in enumerate(batched_inputs):
            frames = images.tensor[v * num_frames : (v + 1) * num_frames]
            outputs = self.common_inference_with_fallback(frames)
            image_size = images.image_sizes[v * num_frames]
            height = video.get("height", image_size[0])
            width = video.get("width", image_size[1])
            results.append(self.inference_video(outputs, image_size, height, width, to_store=to_store))
        torch.cuda.empty_cache()
        return results

    def inference_video(self, outputs, image_size, height, width, to_store="cuda"):
        sequences = outputs["sequences"]
        num_frames = outputs["num_frames"]
        T = num_frames
        padding_masks = torch.zeros(size=(1, 0, T), dtype=torch.bool).to("cuda")
        seq_id_tensor = torch.IntTensor([]).to("cuda")
        seq_id_list, seq_logits, seq_masks = [], [], []
        for seq_id, entry in sequences.items():
            full_logits = torch.ones(num_frames, self.sem_seg_head.num_classes + 1).to(torch.float32).to("cuda") * -1e4
            absent = []
            for t in range(num_frames):
                present = t in entry["logits"] and entry["visible"][t]
                if present:
                    full_logits[t] = entry["logits"][t]
                absent.append(not present)
            first = entry["masks"][entry["start"]]
            masks = [entry["masks"].get(t, torch.full_like(first, -1e4)) for t in range(num_frames)]
            pad = torch.as_tensor(absent, dtype=torch.bool, device=padding_masks.device)
            padding_masks = torch.cat([padding_masks, pad[None, None]], dim=1)
            seq_id_list.append(seq_id)
            seq_logits.append(full_logits.max(dim=0).values)
            seq_masks.append(torch.stack(masks, dim=0))
        if len(seq_id_list) > 0:
            seq_id_tensor = torch.IntTensor(seq_id_list).to("cuda")
        else:
            return {"image_size": (height, width), "pred_scores": [], "pred_labels": [], "pred_masks": [], "task": "vis"}

        logits = torch.stack(seq_logits, dim=0)
        scores, labels = logits.softmax(-1)[:, :-1].max(dim=-1)
        if scores.shape[0] > self.max_num:
            scores, topk_indices = scores.topk(self.max_num, sorted=True)
        else:
            topk_indices = torch.arange(scores.shape[0]).to("cuda")
            scores = scores[topk_indices]
        labels = labels[topk_indices]
        pred_ids = seq_id_tensor[topk_indices]
        num_left = topk_indices.shape[0]

        naive_padding_masks = torch.ones(size=(num_left, num_frames)).to("cuda") < 0
        if self.apply_padding_masks:
            naive_padding_masks = naive_padding_masks | padding_masks[0, topk_indices]

        mask_logits = torch.stack(seq_masks, dim=0).to(to_store)
        mask_logits = mask_logits[topk_indices.to(mask_logits.device)]
        # Nearest upsampling by the mask stride (expand + reshape), then crop the padding.
        s = self.mask_stride
        n, t, h, w = mask_logits.shape
        mask_logits = mask_logits[:, :, :, None, :, None].expand(n, t, h, s, w, s).reshape(n, t, h * s, w * s)
        mask_logits = mask_logits[:, :, : image_size[0], : image_size[1]]
        if (height, width) != tuple(image_size):
            mask_logits = F.interpolate(mask_logits, size=(height, width), mode="bilinear", align_corners=False)
        mask_probs = mask_logits.sigmoid()
        keep = (~naive_padding_masks).to(mask_probs.device).to(mask_probs.dtype)
        mask_probs = mask_probs * keep[:, :, None, None]
        return {
            "image_size": (height, width),
            "pred_scores": scores.cpu(),
            "pred_labels": labels.cpu(),
            "pred_ids": pred_ids.cpu(),
            "pred_masks": (mask_probs > 0.5).cpu(),
            "pred_mask_probs": mask_probs.to("cpu"),
            "task": "vis",
        }


_register(DVISDAQToy)
