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
    return main(["--isolated", "--fix", "--select", "DEV", "--extend-select", "DEV102", *extra, str(path)],
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
