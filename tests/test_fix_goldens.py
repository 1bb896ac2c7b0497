"""Golden fix fixtures: ``corpus/fixes/<CODE>.in.py`` fixed with safe fixes gives ``<CODE>.out.py``,
with ``--unsafe-fixes`` gives ``<CODE>.unsafe.out.py``; fixing again changes nothing."""

from __future__ import annotations

import ast
import io
import pathlib
import shutil

import pytest

from flake8_device.cli import main
from flake8_device.engine import check_source
from flake8_device.rules import CODES

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXES = ROOT / "corpus" / "fixes"
SEED = ROOT / "corpus" / "seed"
INPUTS = sorted(FIXES.glob("*.in.py"))
FIXABLE = sorted(set(CODES))


def _fix(path: pathlib.Path, *extra: str) -> int:
    return main(["--isolated", "--fix", "--select", "DEV", "--extend-select", "DEV102,DEV104", *extra, str(path)],
                stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.parametrize("code", FIXABLE)
def test_every_fixable_code_has_goldens(code):
    assert (FIXES / f"{code}.in.py").exists()
    assert (FIXES / f"{code}.out.py").exists()
    assert (FIXES / f"{code}.unsafe.out.py").exists()


@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.name.split(".")[0])
@pytest.mark.parametrize("unsafe", [False, True], ids=["safe", "unsafe"])
def test_golden(src, unsafe, tmp_path):
    work = tmp_path / src.name
    shutil.copyfile(src, work)
    extra = ("--unsafe-fixes",) if unsafe else ()
    _fix(work, *extra)
    expected = src.with_name(src.name.replace(".in.py", ".unsafe.out.py" if unsafe else ".out.py"))
    got = work.read_text()
    assert got == expected.read_text()
    ast.parse(got)
    # a second run changes nothing
    _fix(work, *extra)
    assert work.read_text() == got
    if unsafe:  # every golden exercises at least one fix
        assert got != src.read_text()


def test_seed_fixed_to_expected_text(tmp_path):
    work = tmp_path / "seed.py"
    shutil.copyfile(SEED / "dvis_daq_seed.py", work)
    _fix(work, "--unsafe-fixes")
    assert work.read_text() == (SEED / "dvis_daq_seed.fixed.py").read_text()
    assert [d for d in check_source(work.read_text()) if d.code != "DEV102"] == []


def test_seed_fix_picks_the_human_device():
    fixed = (SEED / "dvis_daq_seed.fixed.py").read_text()
    # meta-architecture lines follow self.device
    for needle in ("torch.arange(scores.shape[0], device=self.device)",
                   "torch.tensor(seq_id_list, dtype=torch.int32, device=self.device)",
                   "dtype=torch.float32, device=self.device) * -1e4"):
        assert needle in fixed
    # tracker lines follow the tensors they work with, not the mask being moved
    assert ".to(embeds.device)" in fixed
    assert "device=frame_embeds.device)" in fixed
    assert "fill_value=-1, device=ms_outputs.device)" in fixed


def test_default_fix_keeps_a_docstring_only_body_valid(tmp_path):
    src = (
        "import torch\n\n\nclass M(torch.nn.Module):\n    @property\n    def device(self):\n"
        "        return self.w.device\n\n    def f(self, to_store='cuda'):\n        \"\"\"Only a docstring.\"\"\"\n"
    )
    work = tmp_path / "m.py"
    work.write_text(src)
    _fix(work)
    text = work.read_text()
    ast.parse(text)
    # no statement can go after the docstring here: the availability fallback is used instead
    assert "to_store='cuda' if torch.cuda.is_available() else \"cpu\"" in text
    assert ast.get_docstring(ast.parse(text).body[1].body[1]) == "Only a docstring."


# --------------------------------------------------------------------------------------------------
# New portability codes: the fixed goldens run here (no CUDA) and, with CUDA, behave as the originals.


def _load(path: pathlib.Path, name: str) -> dict:
    ns = {"__name__": name}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return ns


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("variant", ["out", "unsafe.out"])
def test_dev007_fixed_golden_runs_without_cuda_as_the_original_does_with_it(variant):
    torch = pytest.importorskip("torch")
    fixed = _load(FIXES / f"DEV007.{variant}.py", "dev007_fixed")
    original = _load(FIXES / "DEV007.in.py", "dev007_original")
    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    batches = [torch.arange(3.0), torch.ones(2)]
    if torch.cuda.is_available():  # the guards are true: the fixed code is the original
        assert torch.equal(fixed["timed_forward"](model.cuda(), x.cuda()),
                           original["timed_forward"](model, x.cuda()))
        got = fixed["drain"]([b.cuda() for b in batches])
        want = original["drain"]([b.cuda() for b in batches])
        assert all(torch.equal(a, b) for a, b in zip(got, want)) and len(got) == len(want)
        assert fixed["setup"](0) == original["setup"](0) == 0
        return
    with pytest.raises(Exception):
        original["timed_forward"](model, x)
    with pytest.raises(Exception):
        original["setup"](0)
    with pytest.raises(Exception):
        original["drain"](batches)
    assert torch.equal(fixed["timed_forward"](model, x), model(x))
    assert fixed["setup"](0) == 0
    if variant == "unsafe.out":  # the stream fix is unsafe: only then does the prefetcher run here
        got = fixed["drain"](batches)
        assert len(got) == 2 and all(torch.equal(g, b * 2) for g, b in zip(got, batches))
    else:
        with pytest.raises(Exception):
            fixed["drain"](batches)


def test_dev008_fixed_golden_initialises_the_process_group_without_cuda():
    torch = pytest.importorskip("torch")
    fixed = _load(FIXES / "DEV008.out.py", "dev008_fixed")
    original = _load(FIXES / "DEV008.in.py", "dev008_original")
    url = ["--dist-url", f"tcp://127.0.0.1:{_free_port()}"]
    assert original["parse"](url).dist_backend == "nccl"
    assert fixed["parse"](url).dist_backend == ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        assert fixed["Config"].dist_backend == "nccl"
        return
    with pytest.raises(Exception):
        original["init"](original["parse"](url))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    assert torch.equal(fixed["init"](fixed["parse"](["--dist-url", f"tcp://127.0.0.1:{_free_port()}"])),
                       torch.ones(1))
    assert torch.equal(fixed["init_default"](port=_free_port()), torch.full((2,), 3.0))
    assert fixed["Config"].dist_backend == "gloo"
