import torch


class Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x, first=True):
        return x.to("cuda:0" if first else "cuda:1") * self.scale
