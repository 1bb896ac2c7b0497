import torch
from torch.nn.parallel import DistributedDataParallel


def wrap(model, local_rank):
    return DistributedDataParallel(model, device_ids=[local_rank], output_device=local_rank)
