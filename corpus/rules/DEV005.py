import torch
from torch.cuda.amp import autocast, GradScaler


def flagged(x):
    with torch.cuda.amp.autocast(enabled=False):
        y = x * 2
    with autocast():
        z = x * 3
    with torch.autocast("cuda", dtype=torch.float16):
        w = x * 4
    with torch.autocast(device_type="cuda"):
        v = x * 5
    scaler = torch.cuda.amp.GradScaler()
    return y, z, w, v, scaler


def not_flagged(x):
    with torch.autocast(device_type=x.device.type):
        y = x * 2
    with torch.amp.autocast("cpu"):
        z = x * 3
    return y, z
