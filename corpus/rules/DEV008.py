import argparse

import torch
import torch.distributed as dist


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--dist-backend", default="nccl", type=str)
    p.add_argument("--mode", default="nccl")
    p.add_argument("--backend", choices=["nccl", "gloo"], default="gloo")
    return p.parse_args()


def init(args, rank, world):
    dist.init_process_group("nccl", init_method=args.url, rank=rank, world_size=world)
    dist.init_process_group(backend="nccl", rank=rank, world_size=world)
    dist_backend = 'nccl'
    args.dist_backend = "nccl"
    group = dist.new_group(ranks=[0, 1], backend=dist.Backend.NCCL)
    return dist_backend, group


def launch(backend="nccl"):
    if backend == "nccl":
        pass


def not_flagged(rank):
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        dist.init_process_group("nccl", rank=rank)
    return backend

