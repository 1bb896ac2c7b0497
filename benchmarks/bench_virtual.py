"""Overhead of the virtual device on a model's forward and backward.

Runs the same model code twice per repetition, interleaved: once as a plain
CPU program (the "cuda" literals replaced by "cpu") and once unchanged under
``virtual_device("cuda")``; prints the median times and their ratio.

    python benchmarks/bench_virtual.py [--reps N] [--threads N]

Models: the bundled DVIS-DAQ-style model (corpus/dvis_daq, needs detectron2)
in training and inference mode when it is importable, always a small
conv + transformer stand-in, and the real DAQ online R50 model when
../shared/realworld/DVIS_DAQ exists (fixed by flake8-device, then run with
MODEL.DEVICE=cpu plainly and with MODEL.DEVICE=cuda under the virtual device).
"""

import argparse
import importlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from flake8_device.virtual import virtual_device  # noqa: E402


# ------------------------------------------------------------ stand-in model
class StandIn(nn.Module):
    def __init__(self, dev):
        super().__init__()
        self.dev = dev
        self.conv = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1))
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = x.to(self.dev)
        f = self.conv(x).flatten(2).transpose(1, 2)
        pos = torch.arange(f.shape[1]).to(self.dev).float()[None, :, None] / 1000
        f = self.enc(f + pos)
        logits = self.head(f).mean(1)
        keep = (logits.sigmoid() > 0.5).to(self.dev)
        return (logits * keep + torch.ones(logits.shape[0], 10).to(self.dev) * -1e4 * (~keep)).pow(2).sum()


def standin_variant(virtual):
    torch.manual_seed(0)
    model = StandIn("cuda" if virtual else "cpu")
    x = torch.rand(4, 3, 32, 32)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).backward()

    vd = virtual_device("cuda") if virtual else None
    if virtual:
        with vd:
            model.to("cuda")
    return step, vd


# ------------------------------------------------------------ corpus model
def _host_copy_api(tmp):
    dst = os.path.join(tmp, "dvis_daq_benchcopy")
    shutil.copytree(os.path.join(ROOT, "corpus", "dvis_daq"), dst)
    for name in os.listdir(dst):
        if name.endswith(".py"):
            p = os.path.join(dst, name)
            with open(p) as fh:
                text = fh.read()
            with open(p, "w") as fh:
                fh.write(text.replace('"cuda"', '"cpu"'))
    sys.path.insert(0, tmp)
    try:
        return importlib.import_module("dvis_daq_benchcopy.api")
    finally:
        sys.path.remove(tmp)


def corpus_variant(api, virtual, train):
    model = api.build(train=train)
    inputs = api.make_inputs(with_targets=train)
    vd = virtual_device("cuda") if virtual else None
    if virtual:
        with vd:  # the same context object is re-entered for every step
            model.to("cuda")

    def step():
        model.zero_grad(set_to_none=True)
        api.scalar_objective(model(inputs)).backward()

    return step, vd


# ------------------------------------------------------------ the real DVIS-DAQ
REALWORLD = os.path.join(os.path.dirname(ROOT), "shared", "realworld", "DVIS_DAQ")
REAL_CONFIG = "configs/dvis_daq/ytvis19/DAQ_Online_R50.yaml"


def realworld_variants(tmp, size=(3, 64, 96)):
    """The real DAQ online R50 model (random weights), fixed by flake8-device: a plain
    CPU run (MODEL.DEVICE=cpu) and the same code under virtual_device("cuda")
    (MODEL.DEVICE=cuda). One copy, so one set of detectron2 registries."""
    from flake8_device.harness import d2
    from flake8_device.harness.project import _copy_tree
    from flake8_device.harness.workspace import fix_package

    root = os.path.join(tmp, "DVIS_DAQ")
    _copy_tree(REALWORLD, root, os.path.join(tmp, "unused"))
    fix_package(root, unsafe=True)
    found = d2.read_setup(os.path.join(root, "train_net_video.py"), root)
    sys.path.insert(0, root)
    for mod in found["imports"]:
        importlib.import_module(mod)
    from detectron2.modeling import build_model

    base = {"setup": found["setup"], "config": os.path.join(root, REAL_CONFIG), "opts": []}
    variants = {}
    for virtual in (False, True):
        cfg = d2.build_cfg(dict(base, device="cuda" if virtual else "cpu"))
        size_d = d2.input_size(cfg, *size)
        vd = virtual_device("cuda", mode="report") if virtual else None
        torch.manual_seed(0)
        if vd is not None:
            with vd:
                model = build_model(cfg)
        else:
            model = build_model(cfg)
        inputs = d2.video_inputs(size_d, d2.num_classes(cfg), seed=0)
        variants[virtual] = (model, inputs, vd)

    def make(virtual, train):
        model, inputs, vd = variants[virtual]

        def step():
            if train:
                model.train()
                model.zero_grad(set_to_none=True)
                sum(model(inputs).values()).backward()
            else:
                model.eval()
                with torch.no_grad():
                    model(inputs)

        return step, vd

    return make


CLOCK = [time.perf_counter]


def timed(variant):
    step, vd = variant
    clock = CLOCK[0]
    t0 = clock()
    if vd is not None:
        with vd:
            step()
    else:
        step()
    return clock() - t0


def bench(name, plain, virt, reps):
    timed(plain), timed(virt)  # warm-up
    tp, tv = [], []
    for _ in range(reps):
        tp.append(timed(plain))
        tv.append(timed(virt))
    assert not virt[1].mismatches, virt[1].format_summary()
    mp, mv = statistics.median(tp), statistics.median(tv)
    print(f"{name:<34} {mp * 1e3:9.1f} {mv * 1e3:9.1f} {mv / mp:7.2f}x")
    return mp, mv


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--real-reps", type=int, default=5,
                    help="repetitions of the real DVIS-DAQ case (../shared/realworld; 0: skip it)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter; cpu: this process's CPU time (time.process_time), steadier "
                         "on a machine shared with other jobs when torch runs one thread")
    args = ap.parse_args(argv)
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import logging
    logging.disable(logging.WARNING)
    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, cuda available: {torch.cuda.is_available()}")
    print(f"forward+backward, median of {args.reps} interleaved repetitions, {args.clock} clock")
    print(f"{'model':<34} {'plain ms':>9} {'virt ms':>9} {'ratio':>8}")
    bench("stand-in conv+transformer", standin_variant(False), standin_variant(True), args.reps)
    try:
        from corpus.dvis_daq import api
    except Exception as exc:  # detectron2 or the corpus missing
        print(f"corpus/dvis_daq not usable ({type(exc).__name__}: {exc}); stand-in only")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        host_api = _host_copy_api(tmp)
        for train in (True, False):
            label = "dvis_daq " + ("training (losses)" if train else "inference")
            bench(label, corpus_variant(host_api, False, train), corpus_variant(api, True, train), args.reps)
    if args.real_reps <= 0:
        return 0
    if not os.path.isdir(REALWORLD):
        print(f"{REALWORLD} absent: no real DVIS-DAQ case")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        make = realworld_variants(tmp)
        print(f"real DVIS-DAQ online R50 (random weights, 3 frames of 64x96), median of {args.real_reps}")
        for train in (True, False):
            label = "real DAQ " + ("training (losses)" if train else "inference (no_grad)")
            bench(label, make(False, train), make(True, train), args.real_reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
