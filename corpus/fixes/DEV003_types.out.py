import torch


def convert(x, half=False):
    t = (torch.cuda.HalfTensor if torch.cuda.is_available() else torch.HalfTensor) if half else (torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor)
    return x.type(t)


def as_long(x):
    return x.type((torch.cuda.LongTensor if torch.cuda.is_available() else torch.LongTensor) if x.dim() > 1 else (torch.cuda.IntTensor if torch.cuda.is_available() else torch.IntTensor))
