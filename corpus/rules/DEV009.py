# A module shaped like Mask2Former's ms_deform_attn_func.py: a compiled op with a PyTorch twin.
import torch
import torch.nn.functional as F
from torch.autograd import Function

try:
    import MultiScaleDeformableAttention as MSDA
except ModuleNotFoundError:
    raise ModuleNotFoundError("compile the op first: cd ops && sh make.sh")

try:
    from deform_conv_ext import deform_conv_forward, deform_conv_backward
except (ImportError, OSError) as err:
    print("deform_conv_ext is not built")
    raise err

import sparse_scatter_ext

# Not flagged: the failure is caught and the name bound to a fallback.
try:
    import FusedLayerNormExt
except ImportError:
    FusedLayerNormExt = None

# Not flagged: a pure-Python dependency, not an extension.
try:
    import numpy as np
except ImportError:
    raise ImportError("numpy is required")

# Not flagged: an unguarded import that no autograd Function calls.
import yaml


class SampleFunction(Function):
    @staticmethod
    def forward(ctx, value, grid):
        ctx.save_for_backward(value, grid)
        return MSDA.sample_forward(value, grid)

    @staticmethod
    def backward(ctx, grad):
        value, grid = ctx.saved_tensors
        return MSDA.sample_backward(value, grid, grad)


class ScatterFunction(Function):
    @staticmethod
    def forward(ctx, src, index):
        return sparse_scatter_ext.forward(src, index)


def sample_pytorch(value, grid):
    return F.grid_sample(value, grid, align_corners=False)


def not_flagged_config(path):
    with open(path) as f:
        return yaml.safe_load(f), np.zeros(1), torch.zeros(1), FusedLayerNormExt
