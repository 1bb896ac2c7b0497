import torch


def flagged(path):
    return torch.load(path)


def not_flagged(path, f):
    a = torch.load(path, map_location="cpu")
    b = torch.load(path, map_location=lambda s, loc: s)
    c = torch.load(f, "cpu")
    return a, b, c


def flagged_in_fstring(path):
    return f"{torch.load(path)}"
