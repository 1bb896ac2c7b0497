"""The ``flake8-device-harness`` command.

Usage: ``flake8-device-harness [--package DIR] [--out DIR] [options]`` (a bundled-style model package) or
``flake8-device-harness --project DIR --config FILE [options]`` (a detectron2 project) or
``flake8-device-harness --project DIR --entry MODULE:FUNCTION [options]`` (a plain PyTorch project); see
docs/harness.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Optional, Sequence, TextIO

from .runner import ATOL, DEFAULT_PACKAGE, RTOL, HarnessConfig, HarnessReport, run_harness
from .project import ORIGINAL_FIXES
from .workspace import MUTATIONS

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def default_package() -> str:
    """The bundled model: corpus/dvis_daq in a checkout, flake8_device/bundled/dvis_daq once installed."""
    if os.path.isfile(os.path.join(DEFAULT_PACKAGE, "__init__.py")):
        return DEFAULT_PACKAGE
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, "bundled", "dvis_daq")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flake8-device-harness",
        description="Fix a vendored PyTorch model package with flake8-device and prove the fixed code "
                    "computes what the original computes (CPU, virtual accelerator, real GPU).",
    )
    p.add_argument("--package", default=default_package(), metavar="DIR",
                   help="the model package folder (default: the bundled corpus/dvis_daq)")
    p.add_argument("--out", default=os.path.join("out", "harness"), metavar="DIR",
                   help="work and report folder (default: out/harness)")
    p.add_argument("--safe-only", action="store_true", help="apply safe fixes only (default: --unsafe-fixes too)")
    p.add_argument("--builder", default="api:build", metavar="MODULE:FUNC",
                   help="builder(train=bool) -> model on the CPU; module relative to the package (default api:build)")
    p.add_argument("--inputs", default="api:make_inputs", metavar="MODULE:FUNC",
                   help="inputs() -> model inputs on the CPU, the same on every call (default api:make_inputs)")
    p.add_argument("--objective", default="api:scalar_objective", metavar="MODULE:FUNC",
                   help="objective(outputs) -> scalar tensor for backward (default api:scalar_objective)")
    p.add_argument("--frames", default="api:input_frames", metavar="MODULE:FUNC",
                   help="frames(inputs) -> the input tensors to differentiate against (default api:input_frames; "
                        "when missing, every floating-point leaf tensor of the inputs)")
    p.add_argument("--device-type", default="cuda", metavar="TYPE",
                   help="accelerator the model hardcodes, virtualised in checks 3 and 4 (default cuda)")
    p.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance of check 5 (default {RTOL:g})")
    p.add_argument("--atol", type=float, default=ATOL, help=f"absolute tolerance of check 5 (default {ATOL:g})")
    p.add_argument("--no-figure", action="store_true", help="do not draw saliency.png")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--mutate-fix", choices=MUTATIONS, default=None, help=argparse.SUPPRESS)
    g = p.add_argument_group(
        "a whole detectron2 project (--project DIR --config FILE)",
        "copy the project's source tree twice, fix every file of one copy, build the model from its config "
        "in separate processes and compare them (docs/harness.md)")
    g.add_argument("--project", metavar="DIR", default=None,
                   help="root of the project's source tree (its packages, configs/ and training script)")
    g.add_argument("--config", metavar="FILE", default=None,
                   help="detectron2 config file of the model, relative to the project root (or inside it)")
    g.add_argument("--entry", metavar="MODULE:FUNCTION", default=None,
                   help="a plain PyTorch project instead of a config: a function of the project (absolute module "
                        "name) returning {'model', 'inputs'[, 'train_inputs', 'objective', 'paths']} or "
                        "(model, inputs[, objective]); docs/harness.md")
    g.add_argument("--setup", metavar="MODULE:FUNC", action="append", default=None,
                   help="a config set-up function (cfg) -> None, in order; repeat for several (default: the "
                        "add_*_config calls of the training script's setup())")
    g.add_argument("--setup-script", metavar="FILE", default=None,
                   help="training script to read setup() and imports from (default: each train*.py at the root, "
                        "under projects/*/ and tools/ is tried until one's setup() accepts the config)")
    g.add_argument("--register", metavar="MODULE", action="append", default=None,
                   help="a module to import so that the model's classes register; repeat for several "
                        "(default: the project modules the training script imports)")
    g.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                   help="config overrides, as detectron2's merge_from_list (e.g. MODEL.MASK_FORMER.DEC_LAYERS 4)")
    g.add_argument("--num-frames", type=int, default=None, metavar="N",
                   help="frames of the synthetic video (default: the config's INPUT.SAMPLING_FRAME_NUM, else 3)")
    g.add_argument("--input-format", choices=("auto", "image", "video"), default="auto",
                   help="inputs as the project's image or video dataset mapper gives them (default auto: from the "
                        "config's datasets and mapper)")
    g.add_argument("--no-saliency", action="store_true",
                   help="skip the optional gradient pass (input gradients of the training objective, saliency)")
    g.add_argument("--size", default="64x96", metavar="HxW",
                   help="frame height x width, rounded up to the model's size divisibility (default 64x96)")
    g.add_argument("--seed", type=int, default=0, help="seed of the weights, inputs and random ops (default 0)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch threads per process, the same in every process (default 1)")
    g.add_argument("--jobs", type=int, default=2, help="processes run at the same time (default 2)")
    g.add_argument("--capture", metavar="NAME", action="append", default=None,
                   help="submodule or method of the model whose outputs make the inference saliency objective; "
                        "repeat for several (default: every top-level submodule)")
    g.add_argument("--original-fixes", metavar="CODES", default=",".join(ORIGINAL_FIXES),
                   help="comma-separated codes whose fixes the original copy also gets, so that it can be imported "
                        f"without a compiled extension (default {','.join(ORIGINAL_FIXES)}; 'none' for none; "
                        "the report lists what they changed)")
    g.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="limit of one model process (default 900)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code not in (0, None) else EXIT_OK
    if args.project or args.config or args.entry:
        return _main_project(args, out, err)
    cfg = HarnessConfig(
        package=args.package, out=args.out, unsafe=not args.safe_only, builder=args.builder,
        inputs=args.inputs, objective=args.objective, frames=args.frames or None,
        device_type=args.device_type, mutate=args.mutate_fix, rtol=args.rtol, atol=args.atol,
        figure=not args.no_figure, progress=None if args.quiet else err,
    )
    report = run(cfg)
    print(_terminal(report), file=out)
    return report.exit_code


def _main_project(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .project import ProjectConfig

    if not args.project or bool(args.config) == bool(args.entry):
        print("flake8-device-harness: --project DIR takes either --config FILE (a detectron2 project) or"
              " --entry MODULE:FUNCTION (a plain PyTorch project)", file=err)
        return EXIT_ERROR
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"flake8-device-harness: --size {args.size!r}: expected HxW, e.g. 64x96", file=err)
        return EXIT_ERROR
    codes = [c.strip() for c in (args.original_fixes or "").split(",") if c.strip() and c.strip().lower() != "none"]
    cfg = ProjectConfig(
        project=args.project, config=args.config, entry=args.entry, out=args.out, unsafe=not args.safe_only, setup=args.setup,
        setup_script=args.setup_script, imports=args.register, opts=list(args.opts), frames=args.num_frames,
        height=h, width=w, input_format=args.input_format, saliency=not args.no_saliency, seed=args.seed, threads=args.threads, jobs=args.jobs, capture=args.capture or [],
        original_fixes=codes, device_type=args.device_type, rtol=args.rtol, atol=args.atol,
        timeout=args.timeout, figure=not args.no_figure, progress=None if args.quiet else err,
    )
    report = run(cfg)
    print(_terminal(report), file=out)
    return report.exit_code


def run(cfg) -> HarnessReport:
    """Run the harness and write report.json and report.md into ``cfg.out``."""
    from .report import write_json, write_markdown

    with warnings.catch_warnings():
        # library deprecation chatter (torch.cuda.amp, detectron2) is not a finding
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if hasattr(cfg, "project"):
            from .project import run_project

            report = run_project(cfg)
        else:
            report = run_harness(cfg)
    out = os.path.abspath(cfg.out)
    os.makedirs(out, exist_ok=True)
    report.files["report.json"] = os.path.join(out, "report.json")
    report.files["report.md"] = os.path.join(out, "report.md")
    write_json(report, report.files["report.json"])
    write_markdown(report, report.files["report.md"])
    return report


def _terminal(report: HarnessReport) -> str:
    from .report import terminal

    return terminal(report)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
