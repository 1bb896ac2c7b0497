import torch


def legacy(n):
    a = torch.LongTensor([1, 2, 3])
    b = torch.Tensor(2, n)
    return a, b


def legacy_forms(x):
    empty = torch.LongTensor()
    shaped = torch.Tensor(torch.Size([2, 3]))
    like = torch.IntTensor(x.shape)
    data = torch.Tensor((2, 3))
    alias = torch.Tensor(x)
    return empty, shaped, like, data, alias
