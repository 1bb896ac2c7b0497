import torch
from torch.cuda import current_device as cur
from torch.nn.parallel import DistributedDataParallel as DDP


def flagged(model, x, path):
    a = torch.zeros(3, device=torch.cuda.current_device())
    b = torch.load(path, map_location=torch.cuda.current_device())
    c = evaluate(model, eval_device=torch.cuda.current_device())
    d = gather(x, output_device=cur())
    e = x.to(device=cur())
    f = build(model, target_device=torch.cuda.current_device())
    return a, b, c, d, e, f


def not_flagged(model, x, path, rank):
    a = torch.cuda.current_device()  # an index used as a value: DEV007
    b = torch.zeros(3, device=x.device)
    c = evaluate(model, index=torch.cuda.current_device())  # not a device-like keyword: DEV007
    if torch.cuda.is_available():
        d = torch.zeros(3, device=torch.cuda.current_device())
    e = torch.load(path, map_location=torch.cuda.current_device() if torch.cuda.is_available() else "cpu")
    f = DDP(model, device_ids=[rank], output_device=torch.cuda.current_device())  # DEV010's call
    return a, b, c, d, e, f
