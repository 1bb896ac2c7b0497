import torch


def run(model, batch, device):
    model.cuda()
    out = model(batch.cuda(non_blocking=True))
    return out.cuda(1)
