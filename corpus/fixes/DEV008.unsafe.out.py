import argparse

import torch
import torch.distributed as dist


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--dist-backend", default="nccl" if torch.cuda.is_available() else "gloo", type=str)
    parser.add_argument("--dist-url", default="tcp://127.0.0.1:29531", type=str)
    return parser.parse_args(argv)


def init(args, rank=0, world_size=1):
    dist.init_process_group(backend=args.dist_backend, init_method=args.dist_url, rank=rank,
                            world_size=world_size)
    total = torch.ones(1)
    dist.all_reduce(total)
    dist.destroy_process_group()
    return total


def init_default(rank=0, world_size=1, port=29532):
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    value = torch.full((2,), 3.0)
    dist.all_reduce(value)
    dist.destroy_process_group()
    return value


class Config:
    dist_backend = "nccl" if torch.cuda.is_available() else "gloo"
