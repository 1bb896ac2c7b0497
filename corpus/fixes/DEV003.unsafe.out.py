import torch
from torch import nn


class Head(nn.Module):
    @property
    def device(self):
        return self.weight.device

    def forward(self, n):
        a = torch.zeros(n, device=self.device)
        b = torch.tensor([1, 2, 3], dtype=torch.int64, device=self.device)
        c = a.to(device=self.device, dtype=torch.float32)
        return a, b, c


def make(n):
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.zeros(n, device=dev), dev


class Buffers(nn.Module):
    @property
    def device(self):
        return self.weight.device

    def fresh(self):
        return torch.empty(0, dtype=torch.int64, device=self.device), torch.empty(torch.Size([2, 3]), dtype=torch.float32, device=self.device)
