import torch
from torch import nn


class Head(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.register_buffer("b", torch.zeros(n))
        self.p = nn.Parameter(torch.ones(n))

    def forward(self, x):
        pad = torch.zeros(x.shape[0], 1)
        idx = torch.arange(x.shape[0])
        ok = torch.zeros(x.shape[0], 1, device=x.device)
        scale = torch.tensor(2.0)
        return torch.cat([x, pad], 1)[idx] * scale + ok.sum()


def with_device(x, device):
    return x + torch.ones(3)


def plain_function(n):
    return torch.zeros(n)
