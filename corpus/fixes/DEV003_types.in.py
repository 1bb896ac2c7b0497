import torch


def convert(x, half=False):
    t = torch.cuda.HalfTensor if half else torch.cuda.FloatTensor
    return x.type(t)


def as_long(x):
    return x.type(torch.cuda.LongTensor if x.dim() > 1 else torch.cuda.IntTensor)
