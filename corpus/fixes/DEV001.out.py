import torch
from torch import nn


class Meta(nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess(self, batched_inputs):
        images = [x["image"].to(self.device) for x in batched_inputs]
        masks = [x["mask"].to(device=self.device, non_blocking=True) for x in batched_inputs]
        return images, masks


def step(x, device):
    y = x.to(torch.device("cuda"))  # keep this comment
    return y.to(f"cuda:{0}")


def chunked(mask: torch.Tensor, embeds: torch.Tensor):
    seg = (mask.sigmoid() > 0.5).to(embeds.device)
    return seg.float() @ embeds


def nothing_to_follow(x):
    return x.to("cuda")
