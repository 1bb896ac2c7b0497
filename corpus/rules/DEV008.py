import argparse
from typing import Literal

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



def _test_nccl_worker(rank, world_size, url):
    dist.init_process_group(backend="NCCL", init_method=url, rank=rank, world_size=world_size)


def requires_nccl():
    return lambda fn: fn


@requires_nccl()
def not_flagged_requires_nccl(rank):
    dist.init_process_group("nccl", rank=rank)


def not_flagged_literal(group, backend: Literal["NCCL"] = "NCCL"):
    return group, backend
