import unittest

import torch
import torch as T


def flagged(x, rank):
    a = x.to("cuda")
    b = x.to("cuda:1")
    c = x.to(device="cuda")
    d = x.to(torch.device("cuda"))
    e = x.to("cuda", non_blocking=True)
    f = x.to("mps")
    g = x.to(f"cuda:{rank}")
    h = x.to("cuda:{}".format(rank))
    i = x.to(T.device("xpu"))
    j = (
        x.sigmoid()
        .to(
            "cuda"
        )
    )
    return a, b, c, d, e, f, g, h, i, j


def not_flagged(x, y, device):
    a = x.to("cpu")
    b = x.cpu()
    c = x.to(y.device)
    d = x.to(torch.float32)
    e = x.to(device)
    f = x.to("meta")
    g = x.to("cuda" if torch.cuda.is_available() else "cpu")
    torch.cuda.empty_cache()
    if torch.cuda.is_available():
        h = x.to("cuda")
    if x.is_cuda:
        i = y.to("cuda")
    if x.device.type == "cuda":
        j = y.to("cuda")
    k = x.to("cuda")  # noqa: DEV001
    return a, b, c, d, e, f, g, h, i, j, k


def early_exit_guard(x):
    if not torch.cuda.is_available():
        return x
    return x.to("cuda")


def flagged_both_branches(x, a):
    return x.to("cuda:0" if a else "cuda:1")


def not_flagged_bound_availability(x):
    has_gpu = torch.cuda.is_available()
    if has_gpu:
        x = x.to("cuda")
    return x.to("cuda" if has_gpu else "cpu")


@unittest.skipIf(not torch.cuda.is_available(), "CUDA not available")
def not_flagged_skip_if(x):
    return x.to("cuda")
