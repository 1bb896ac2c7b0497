import torch
import torch.nn as nn


def flagged(batch, boxes, n):
    lengths = torch.LongTensor([len(b) for b in batch])
    kept = torch.FloatTensor(boxes).cpu()
    indices = torch.Tensor(boxes).to(torch.int64)
    sized = torch.Tensor(2, n)
    return lengths, kept.numpy(), indices, sized


class Model(nn.Module):
    def __init__(self, mean, n):
        super().__init__()
        self.register_buffer("pixel_mean", torch.Tensor(mean).view(-1, 1, 1), False)
        self.weight = nn.Parameter(torch.Tensor(n, 4))


def not_flagged_moved(ids, device):
    a = torch.LongTensor(ids).to(device)
    b = torch.LongTensor(ids)
    return a, b.cuda()


def not_flagged_modern(x):
    return torch.tensor([1, 2], dtype=torch.int64), isinstance(x, torch.LongTensor)
