import torch
from torch import nn
from torch.nn import functional as F
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList


class Backbone(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.conv = nn.Conv2d(3, hidden, 3, padding=1)

    def features(self, x):  # what the model calls; no module's forward is ever used
        return F.relu(F.conv2d(x, self.conv.weight, self.conv.bias, padding=1))


class Predictor(nn.Module):
    def __init__(self, hidden, classes):
        super().__init__()
        self.cls = nn.Conv2d(hidden, classes, 1)

    def predict(self, x):
        return F.conv2d(x, self.cls.weight, self.cls.bias)


@META_ARCH_REGISTRY.register()
class PlainSeg(nn.Module):
    """A device-agnostic image model: one CHW image per input, instances and sem_seg in training."""

    def __init__(self, cfg):
        super().__init__()
        hidden = cfg.MODEL.PLAINSEG.HIDDEN
        self.num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        self.backbone = Backbone(hidden)
        self.predictor = Predictor(hidden, self.num_classes)
        self.register_buffer("pixel_mean", torch.Tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.Tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
        images = ImageList.from_tensors([(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std
                                         for x in batched_inputs], 32)
        logits = self.predictor.predict(self.backbone.features(images.tensor))
        sem = torch.stack([x["sem_seg"] for x in batched_inputs]).to(self.device)
        masks = batched_inputs[0]["instances"].gt_masks.to(self.device)  # a tensor, as Mask2Former's mappers give
        h, w = sem.shape[-2:]
        loss_sem = F.cross_entropy(logits[:, :, :h, :w], sem)
        loss_mask = (logits[0, : masks.shape[0], :h, :w].sigmoid() - masks.float()).abs().mean()
        return {"loss_sem_seg": loss_sem, "loss_mask": loss_mask}

    @torch.no_grad()
    def inference(self, batched_inputs):
        images = ImageList.from_tensors([(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std
                                         for x in batched_inputs], 32)
        logits = self.predictor.predict(self.backbone.features(images.tensor))
        return [{"sem_seg": logits[i, :, : x["height"], : x["width"]].softmax(0)} for i, x in enumerate(batched_inputs)]
