import torch
import torch.nn as nn


def flagged(ids, n, device):
    a = torch.IntTensor(ids).to("cuda")
    b = torch.IntTensor([]).to("cuda")
    seq = [1, 2, 3]
    c = torch.LongTensor(seq).to(device)
    d = torch.Tensor(2, 3).view(-1).to(device)
    e = torch.BoolTensor([True, False])
    return a, b, c, d, e.to(device)


class Head(nn.Module):
    def __init__(self, mean):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(mean))

    def forward(self, x, ids, kernel):
        scaled = torch.FloatTensor(ids) * self.pixel_mean
        picked = x[torch.LongTensor(ids).cuda()]
        w = to_device(torch.Tensor(kernel), x.device)
        both = torch.cat([torch.Tensor(kernel), x.cuda()])
        return scaled, picked, w, both


def not_flagged(x):
    a = torch.tensor([1, 2], dtype=torch.int32)
    b = isinstance(x, torch.Tensor)
    return a, b


def not_flagged_stays_on_the_cpu(batch, boxes):
    lengths = torch.LongTensor([len(b) for b in batch])
    kept = torch.FloatTensor(boxes).cpu()
    indices = torch.Tensor(boxes).to(torch.int64)
    return lengths, kept.numpy(), indices


class NotFlaggedInit(nn.Module):
    def __init__(self, mean, n):
        super().__init__()
        self.register_buffer("pixel_mean", torch.Tensor(mean).view(-1, 1, 1), False)
        self.weight = nn.Parameter(torch.Tensor(n, 4))


def to_device(t, device):
    return t.to(device)
