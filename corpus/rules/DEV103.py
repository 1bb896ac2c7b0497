import torch


def flagged(ids, n):
    a = torch.IntTensor(ids).to("cuda")
    b = torch.IntTensor([]).to("cuda")
    seq = [1, 2, 3]
    c = torch.LongTensor(seq)
    d = torch.Tensor(2, 3)
    e = torch.BoolTensor([True, False])
    return a, b, c, d, e


def not_flagged(x):
    a = torch.tensor([1, 2], dtype=torch.int32)
    b = isinstance(x, torch.Tensor)
    return a, b


def flagged_forms(x):
    empty = torch.LongTensor()
    shaped = torch.Tensor(torch.Size([2, 3]))
    alias = torch.Tensor(x)
    return empty, shaped, alias
