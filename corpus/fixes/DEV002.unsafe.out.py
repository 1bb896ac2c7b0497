import torch


def run(model, batch, device):
    model.to(device)
    out = model(batch.to(device, non_blocking=True))
    return out.to(device)
