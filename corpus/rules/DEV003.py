import torch
from torch import nn


def flagged(n, x):
    a = torch.zeros(n, device="cuda")
    b = torch.empty(3, device=torch.device("cuda:0"))
    dev = torch.device("cuda")
    c = torch.cuda.FloatTensor(2, 3)
    d = x.type(torch.cuda.FloatTensor)
    e = x.type("torch.cuda.LongTensor")
    return a, b, dev, c, d, e


class Net(nn.Module):
    @property
    def device(self):
        return torch.device("cuda")


def not_flagged(n, x):
    a = torch.zeros(n, device=x.device)
    b = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    c = torch.zeros(n, device="cpu")
    if torch.cuda.is_available():
        d = torch.device("cuda")
    e = x.type(torch.float32)
    f = torch.device("cpu")
    return a, b, c, d, e, f


def flagged_cuda_types_as_values(x, half):
    t = torch.cuda.HalfTensor if half else torch.cuda.FloatTensor
    y = x.type(torch.cuda.HalfTensor if half else torch.cuda.FloatTensor)
    types = (torch.cuda.LongTensor, torch.cuda.BoolTensor)
    return x.type(t), y, types


def not_flagged_cuda_types_compared(x):
    on_gpu = isinstance(x, torch.cuda.FloatTensor)
    same = x.type() == "torch.cuda.FloatTensor"
    t = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor
    return on_gpu, same, x.type(t)
