import numpy as np
import torch
from torch import zeros


def flagged(x, n, ids):
    a = torch.zeros(n).to(x.device)
    b = torch.ones(n).to(torch.float32).to("cuda")
    c = torch.empty(size=(0, 1, 8), dtype=torch.float32).to("cuda")
    d = torch.arange(n).cuda()
    e = torch.tensor([1, 2, 3]).type_as(x)
    f = zeros(n).to(x.device)
    g = torch.full((n,), fill_value=-1).to(x)
    h = torch.as_tensor(ids).to(x.device)
    i = torch.randn(n).to("cuda")
    j = torch.linspace(0, 1, n).float().to(x.device)
    k = (
        torch.zeros(
            size=(n,),
            dtype=torch.bool,
        )
        .to("cuda")
    )
    return a, b, c, d, e, f, g, h, i, j, k


def not_flagged(x, n):
    a = torch.zeros(n, device=x.device)
    b = torch.zeros(n).to(torch.float32)
    c = torch.zeros(n).to("cpu")
    d = torch.zeros_like(x).to(x.device)
    e = x.new_zeros(n)
    f = torch.ones(n).float()
    return a, b, c, d, e, f


def not_flagged_host_views(x, ids, values):
    # the array's memory is shared: the move is the only copy
    a = torch.from_numpy(ids).to(x.device)
    b = torch.as_tensor(np.asarray(values)).to(x.device)
    c = torch.from_numpy(ids).float().to(x.device)
    return a, b, c
