"""The ``flake8-device-harness`` command.

Usage: ``flake8-device-harness [--package DIR] [--out DIR] [options]``; see docs/harness.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Optional, Sequence, TextIO

from .runner import ATOL, DEFAULT_PACKAGE, RTOL, HarnessConfig, HarnessReport, run_harness
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
    return p


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code not in (0, None) else EXIT_OK
    cfg = HarnessConfig(
        package=args.package, out=args.out, unsafe=not args.safe_only, builder=args.builder,
        inputs=args.inputs, objective=args.objective, frames=args.frames or None,
        device_type=args.device_type, mutate=args.mutate_fix, rtol=args.rtol, atol=args.atol,
        figure=not args.no_figure, progress=None if args.quiet else err,
    )
    report = run(cfg)
    print(_terminal(report), file=out)
    return report.exit_code


def run(cfg: HarnessConfig) -> HarnessReport:
    """Run the harness and write report.json and report.md into ``cfg.out``."""
    from .report import write_json, write_markdown

    with warnings.catch_warnings():
        # library deprecation chatter (torch.cuda.amp, detectron2) is not a finding
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
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
