import torch

DEVICE = "cuda"
OTHER = torch.device("cuda")


class Model(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def forward_offline_mode(self, x, to_store="cuda"):
        return self.common_inference(x, to_store="cuda")

    def common_inference(self, x, to_store="cpu"):
        return x.to(to_store)


def load(path):
    return torch.load(path, map_location="cuda")


def not_flagged(path, x):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    state = torch.load(path, map_location="cpu")
    name = "cuda"
    kind = x.device.type == "cuda"
    return device, state, name, kind


def flagged_built_device_strings(path, gpu, rank):
    loc = "cuda:{}".format(gpu)
    target = "cuda:%d" % rank
    where = "cuda:" + str(rank)
    checkpoint = torch.load(path, map_location=loc)
    return checkpoint, target, where


def not_flagged_labels(gpu):
    label = "cuda"
    message = "running on {}".format(gpu)
    return label, message


def flagged_script_defaults(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--eval-device", type=str, default="cuda:0")
    parser.add_argument("-d", dest="train_device", default="cuda")
    return parser.parse_args(argv)


def not_flagged_script_defaults(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--store-device", default="cpu")
    parser.add_argument("--backend-name", default="cuda")
    parser.add_argument("--device-count", type=int, default=1)
    return parser.parse_args(argv)


import click  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402


@click.command()
@click.option("--device", default="cuda")
@click.option("--label", default="cuda")
def flagged_click(device, label):
    return device, label


@dataclass
class FlaggedConfig:
    device: str = "cuda"
    eval_device: str = field(default="cuda:0")
    label: str = field(default="cuda")
    store_device: str = field(default="cpu")


def flagged_blind_conditionals(cpu_group, rank, path):
    device = "cuda" if cpu_group is None else "cpu"
    state = torch.load(path, map_location="cuda" if rank == 0 else "cpu")
    x = torch.zeros(3, device="cpu" if rank > 0 else "cuda:0")
    return device, state, x


def not_flagged_choices(args, rank):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    label_device = "cuda" if args.device == "gpu" else "cpu"
    flag_device = "cuda" if args.use_gpu else "cpu"
    cpu_device = "cpu" if args.cpu else "cuda"
    name = "cuda" if rank == 0 else "cpu"
    return device, label_device, flag_device, cpu_device, name
