import torch
from torch import nn

from netlib.blocks import ConvBlock, CoordEncoder


class TinySegmenter(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.coords = CoordEncoder()
        self.stem = ConvBlock(5, 8)
        self.head = nn.Conv2d(8, classes, 1)
        self.temperature = nn.Parameter(torch.tensor(1.5))

    def forward(self, images):
        b, _, h, w = images.shape
        feats = self.stem(self.coords(images))
        logits = self.head(feats) / self.temperature
        valid = torch.ones(b, 1, h, w).cuda()
        return {"logits": logits * valid, "mask": logits.argmax(1)}
