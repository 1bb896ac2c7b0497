"""A small robustness sweep: lint + ``--fix --unsafe-fixes`` on copies of real code.

Runs benchmarks/sweep.py over the repository's corpus/ and a fixed sample of
torchvision and detectron2 files (when installed): the engine never crashes,
fixed files parse, a second pass changes nothing, and files without a
diagnostic are left byte for byte.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import sweep as sweep_mod  # noqa: E402
from bench_lint import package_dir, python_files, spread  # noqa: E402

SAMPLE_PER_PACKAGE = 20
# Files the fixes change (torchvision 0.29, detectron2 0.6), added to the sample
# so that it exercises fixing real code, not only linting it.
WITH_FIXES = {
    "torchvision": ["datasets/mnist.py", "datasets/samplers/clip_sampler.py"],
    "detectron2": ["export/c10.py", "layers/deform_conv.py", "modeling/test_time_augmentation.py", "utils/comm.py"],
}


def _package_sample(name: str):
    if importlib.util.find_spec(name) is None:
        return None, []
    root = package_dir(name)
    files = spread(python_files([root]), SAMPLE_PER_PACKAGE)
    for rel in WITH_FIXES.get(name, []):
        path = os.path.join(root, rel)
        if os.path.isfile(path) and path not in files:
            files.append(path)
    return root, files


def _check(res: sweep_mod.SweepResult) -> None:
    assert res.crashes == []
    assert res.internal_errors == []
    assert res.unparsable_outputs == []
    assert res.rejected_fixes == []
    assert res.non_idempotent == []
    assert res.touched_clean == []


@pytest.fixture(scope="module")
def corpus_result(tmp_path_factory):
    root = os.path.join(REPO, "corpus")
    files = python_files([root])
    assert files, "corpus/ has no .py files"
    return sweep_mod.sweep(files, [root], str(tmp_path_factory.mktemp("sweep-corpus")))


def test_corpus_sweep_is_clean(corpus_result):
    _check(corpus_result)
    # the corpus exists to be fixed: the sweep must have fixed something
    assert corpus_result.found
    assert corpus_result.fixed_files


@pytest.mark.slow
@pytest.mark.parametrize("package", ["torchvision", "detectron2"])
def test_package_sample_sweep_is_clean(package, tmp_path):
    root, files = _package_sample(package)
    if not files:
        pytest.skip(f"{package} is not installed")
    res = sweep_mod.sweep(files, [root], str(tmp_path))
    assert res.files == len(files)
    _check(res)


def test_sweep_reports_a_touched_clean_file(tmp_path, monkeypatch):
    """The sweep's own oracle: a fixer that edits a clean file is caught."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "clean.py").write_text("x = 1\n")
    real_main = sweep_mod.cli.main

    def meddling_main(argv, **kw):
        rc = real_main(argv, **kw)
        for path in argv:
            if path.endswith("clean.py"):
                with open(path, "a") as fh:
                    fh.write("y = 2\n")
        return rc

    monkeypatch.setattr(sweep_mod.cli, "main", meddling_main)
    res = sweep_mod.sweep([str(src / "clean.py")], [str(src)], str(tmp_path / "work"))
    assert len(res.touched_clean) == 1
    assert len(res.non_idempotent) == 1


REAL_WORLD = os.path.join(os.path.dirname(REPO), "shared", "realworld", "DVIS_DAQ")


@pytest.mark.parametrize("unsafe", [False, True], ids=["fix", "fix-unsafe"])
def test_real_world_dvis_daq_fixes_leave_no_undefined_name(unsafe, tmp_path):
    """Every .py of the real DVIS-DAQ sources, on a copy: no new undefined name
    (pyflakes, fixed vs original), every fixed file parses, a second run changes nothing."""
    if not os.path.isdir(REAL_WORLD):
        pytest.skip(f"the real-world DVIS-DAQ copy is not at {REAL_WORLD} (it is not part of a clone)")
    files = python_files([REAL_WORLD])
    res = sweep_mod.sweep(files, [REAL_WORLD], str(tmp_path), unsafe=unsafe)
    assert res.new_undefined == []
    _check(res)
    assert res.fixed_files  # the sources are hardcoded: the fixes must change something
    assert sum(res.fixed.values()) > 0


def test_sweep_reports_a_new_undefined_name(tmp_path, monkeypatch):
    """The sweep's own oracle: a fix that leaves a name undefined is caught."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text('import torch\nx = torch.zeros(2).to("cuda")\n')
    real_main = sweep_mod.cli.main

    def careless_main(argv, **kw):
        rc = real_main(argv, **kw)
        for path in argv:
            if path.endswith("m.py"):
                with open(path, "a") as fh:
                    fh.write("y = undefined_thing\n")
        return rc

    monkeypatch.setattr(sweep_mod.cli, "main", careless_main)
    res = sweep_mod.sweep([str(src / "m.py")], [str(src)], str(tmp_path / "work"))
    assert res.new_undefined == [(str(src / "m.py"), "'undefined_thing' (+1)")]
