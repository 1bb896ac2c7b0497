import torch


def flagged(x, model):
    a = x.cuda()
    b = x.cuda(1)
    c = x.cuda(non_blocking=True)
    model.cuda()
    return a, b, c


def not_flagged(x):
    torch.cuda.synchronize()
    n = torch.cuda.device_count()
    if torch.cuda.is_available():
        x = x.cuda()
    y = x.cuda() if torch.cuda.is_available() else x
    return n, y
