import torch
from torch.cuda import current_device as cur


def buffer(n):
    return torch.zeros(n, device=torch.cuda.current_device())


def restore(path):
    # torch.load calls an int map_location: reported, no fix
    return torch.load(path, map_location=cur())


def place(x):
    return x.to(device=cur())


def score(x, eval_device):
    return (x * 2).to(eval_device)


def evaluate(x):
    return score(x, eval_device=torch.cuda.current_device())
