import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP


def wrap(model, local_rank, args):
    a = DistributedDataParallel(model, device_ids=[local_rank], broadcast_buffers=False)
    b = DDP(model, [args.gpu], args.gpu)
    c = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank], output_device=local_rank)
    d = FSDP(model, device_id=torch.cuda.current_device())
    return a, b, c, d


def not_flagged(model, local_rank):
    a = DistributedDataParallel(model, device_ids=None)
    b = DistributedDataParallel(model)
    c = DistributedDataParallel(model, device_ids=[local_rank] if torch.cuda.is_available() else None)
    d = torch.nn.DataParallel(model, device_ids=[0])
    if torch.cuda.is_available():
        e = DDP(model, device_ids=[local_rank])
    f = FSDP(model)
    return a, b, c, d, e, f


def not_flagged_cuda_worker(model, rank):
    return DDP(model, device_ids=[rank])
