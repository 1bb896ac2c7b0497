import torch


def legacy(n):
    a = torch.tensor([1, 2, 3], dtype=torch.int64)
    b = torch.empty(2, n)
    return a, b


def legacy_forms(x):
    empty = torch.empty(0, dtype=torch.int64)
    shaped = torch.empty(torch.Size([2, 3]))
    like = torch.empty(x.shape, dtype=torch.int32)
    data = torch.tensor((2, 3), dtype=torch.get_default_dtype())
    alias = torch.tensor(x, dtype=torch.get_default_dtype())
    return empty, shaped, like, data, alias
