import numpy as np
import torch
from torch import nn
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList


class Head(nn.Module):
    """Version 2 of a head whose version-1 weights named the predictor ``cls``."""

    _version = 2

    def __init__(self, hidden, classes):
        super().__init__()
        self.predictor = nn.Linear(hidden, classes + 1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            for k in list(state_dict.keys()):
                if k.startswith(prefix + "predictor."):
                    state_dict[k.replace(prefix + "predictor.", prefix + "cls.")] = state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x):
        return self.predictor(x)


@META_ARCH_REGISTRY.register()
class ClipNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden = cfg.MODEL.CLIPNET.HIDDEN
        self.num_frames = cfg.INPUT.SAMPLING_FRAME_NUM
        self.backbone = nn.Conv2d(3, hidden, 3, padding=1)
        self.temporal = nn.Linear(hidden * self.num_frames, hidden)
        self.head = Head(hidden, cfg.MODEL.CLIPNET.NUM_CLASSES)
        self.class_embed = nn.Embedding(cfg.MODEL.CLIPNET.NUM_CLASSES, hidden)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))  # a 0-dim parameter
        self.register_buffer("pixel_mean", torch.Tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.Tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        frames = [(f.to(self.device) - self.pixel_mean) / self.pixel_std
                  for video in batched_inputs for f in video["image"]]
        images = ImageList.from_tensors(frames, 32)
        feats = self.backbone(images.tensor).mean(dim=(2, 3))  # (B*T, hidden)
        B = len(images) // self.num_frames
        clip = self.temporal(feats.reshape(B, -1))  # (B, hidden)
        logits = self.head(clip) * self.logit_scale
        if self.training:
            labels = torch.cat([video["instances"][0].gt_classes[:1] for video in batched_inputs]).to("cuda")
            proto = self.class_embed(labels)
            return {"loss_ce": nn.functional.cross_entropy(logits, labels),
                    "loss_proto": ((clip - proto) ** 2).mean()}
        scores = logits.softmax(-1).max(-1).values.to("cuda")
        kept = np.flatnonzero(scores.cpu().numpy() > 0)  # hands the scores to NumPy, as post-processing does
        return [{"scores": scores, "kept": torch.as_tensor(kept)}]
