import torch


def place(x, cpu_group=None):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cpu_group is None else "cpu"
    return x.to(device) * 2


def buffer(n, rank=0):
    return torch.arange(n, device="cpu" if rank > 0 else ("cuda:0" if torch.cuda.is_available() else "cpu"))


def kept_on_the_cpu(x, cpu_group="gloo"):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cpu_group is None else "cpu"
    return x.to(device) + 1
