import argparse

import click
import torch


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--eval-device", type=str, default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fallback", dest="train_device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--store-device", default="cpu")
    return parser.parse_args(argv)


@click.command()
@click.option("--device", default="cuda" if torch.cuda.is_available() else "cpu")
def main(device):
    return torch.ones(2, device=device)


def place(x, argv=()):
    args = parse(list(argv))
    return x.to(args.device) + x.to(args.eval_device) * 2


def run_main():
    return main.callback(device=main.params[0].default)
