import torch
from torch import nn


class Head(nn.Module):
    @property
    def device(self):
        return self.weight.device

    def forward(self, n):
        a = torch.zeros(n, device="cuda")
        b = torch.cuda.LongTensor([1, 2, 3])
        c = a.type(torch.cuda.FloatTensor)
        return a, b, c


def make(n):
    dev = torch.device("cuda")
    return torch.zeros(n, device="cuda"), dev


class Buffers(nn.Module):
    @property
    def device(self):
        return self.weight.device

    def fresh(self):
        return torch.cuda.LongTensor(), torch.cuda.FloatTensor(torch.Size([2, 3]))
