"""A few strided convolutions standing in for a real backbone and pixel decoder."""
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone


class TinyBackbone(Backbone):
    """Three stride-2 stages: res2 (1/2), res3 (1/4), res4 (1/8)."""

    def __init__(self, in_channels=3, channels=(16, 24, 32)):
        super().__init__()
        self._out_features = ["res2", "res3", "res4"]
        strides = [2, 4, 8]
        self.stages = nn.ModuleList()
        prev = in_channels
        for ch in channels:
            self.stages.append(nn.Conv2d(prev, ch, kernel_size=3, stride=2, padding=1))
            prev = ch
        self._out_feature_channels = dict(zip(self._out_features, channels))
        self._out_feature_strides = dict(zip(self._out_features, strides))

    def forward(self, x):
        outs = {}
        for name, stage in zip(self._out_features, self.stages):
            x = F.relu(stage(x))
            outs[name] = x
        return outs

    def output_shape(self):
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


class TinyPixelDecoder(nn.Module):
    """Top-down fusion to 1/4 resolution mask features plus a 1/8 memory for attention."""

    def __init__(self, input_shape, hidden_dim):
        super().__init__()
        self.lateral = nn.Conv2d(input_shape["res3"].channels, hidden_dim, kernel_size=1)
        self.top = nn.Conv2d(input_shape["res4"].channels, hidden_dim, kernel_size=1)
        self.mask_proj = nn.Conv2d(hidden_dim, hidden_dim, kernel_size=3, padding=1)

    def forward(self, features):
        top = self.top(features["res4"])
        # Nearest x2 upsampling written as expand + reshape: its backward is a
        # plain reduction, deterministic on every device.
        n, c, h, w = top.shape
        up = top[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
        mask_features = self.mask_proj(F.relu(self.lateral(features["res3"]) + up))
        return mask_features, top
