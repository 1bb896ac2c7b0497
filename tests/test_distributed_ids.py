"""DEV010: device ids given to DistributedDataParallel / FullyShardedDataParallel, run for real.

A one-process gloo group on this CPU machine: the original wrapper call raises (the module is on
the CPU, CUDA is missing), the fixed call builds the wrapper and computes what the plain module
computes.  Each case runs in a fresh interpreter (a process group is per process).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from flake8_device.engine import check_source  # noqa: E402
from flake8_device.options import Options  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="shows the CPU-only behaviour")

GROUP = """\
import os, tempfile, torch
import torch.distributed as dist
dist.init_process_group("gloo", init_method="file://" + tempfile.mktemp(), rank=0, world_size=1)
torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
x = torch.ones(1, 3)
"""

CASES = {
    "keyword": "from torch.nn.parallel import DistributedDataParallel\n"
               "local_rank = 0\n"
               "w = DistributedDataParallel(model, device_ids=[local_rank], output_device=local_rank)\n",
    "positional": "from torch.nn.parallel import DistributedDataParallel as DDP\n"
                  "w = DDP(model, [0], 0)\n",
}


def fixed(source: str) -> str:
    text = source
    found = [d for d in check_source(source, options=Options()) if d.code == "DEV010"]
    assert len(found) == 1, [(d.code, d.message) for d in check_source(source, options=Options())]
    d = found[0]
    assert d.fix is not None and d.fix.safe
    (op,) = d.fix.ops
    lines = text.splitlines(keepends=True)
    line = lines[op.span.line - 1]
    lines[op.span.line - 1] = line[:op.span.col] + op.text + line[op.span.end_col:]
    return "".join(lines)


def run(program: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(CASES))
def test_original_raises_and_fix_runs_on_a_cpu_group(case):
    body = CASES[case]
    original = run(GROUP + body + "print(w(x).tolist() == model(x).tolist())\n")
    assert original.returncode != 0 and "device_ids" in original.stderr, original.stderr[-2000:]
    new = fixed(body)
    assert new != body and "torch.cuda.is_available()" in new
    done = run(GROUP + new + "print(w(x).tolist() == model(x).tolist())\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


def test_fixed_value_is_the_original_where_cuda_exists():
    # the fix is `<ids> if torch.cuda.is_available() else None`: with CUDA it is the same ids
    new = fixed(CASES["keyword"])
    ns = {"torch": torch, "local_rank": 3}
    expr = new.split("device_ids=", 1)[1].split(", output_device", 1)[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: True)
        assert eval(expr, ns) == [3]
    assert eval(expr, ns) is None


def test_data_parallel_and_guarded_calls_are_not_reported():
    src = textwrap.dedent("""\
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        def f(model, rank):
            a = torch.nn.DataParallel(model, device_ids=[0])
            b = DDP(model, device_ids=None)
            if torch.cuda.is_available():
                c = DDP(model, device_ids=[rank])
            return a, b, c
        """)
    assert [d for d in check_source(src, options=Options()) if d.code == "DEV010"] == []
