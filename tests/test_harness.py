"""The equivalence harness (flake8-device-harness) on the bundled model.

One full run must pass checks 1-4 and skip check 5 without CUDA; a run whose
fixed copy is deliberately broken after fixing must fail, naming the check.
"""
import io
import json
import pathlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("detectron2")
pytest.importorskip("scipy")

from flake8_device.harness import cli as harness_cli  # noqa: E402
from flake8_device.harness import workspace  # noqa: E402
from flake8_device.harness.tensors import compare, flatten, move  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "corpus" / "dvis_daq"


def _run(out, *extra):
    stdout, stderr = io.StringIO(), io.StringIO()
    rc = harness_cli.main(["--out", str(out), "--package", str(PACKAGE), *extra], stdout=stdout, stderr=stderr)
    return rc, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("harness")
    rc, text, progress = _run(out)
    return out, rc, text, progress


@pytest.mark.slow
def test_full_run_passes(full_run):
    out, rc, text, progress = full_run
    assert rc == 0, text
    assert "harness: OK (exit 0)" in text
    for name in ("report.json", "report.md", "saliency.png"):
        assert (out / name).is_file(), name
    assert (out / "saliency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "check 3:" in progress  # progress lines on stderr
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is True and report["exit_code"] == 0
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status[1] == status[2] == status[3] == status[4] == "PASS"
    want5 = "PASS" if torch.cuda.is_available() else "SKIP"
    assert status[5] == want5
    checks = {c["id"]: c for c in report["checks"]}
    assert "NVIDIA driver" in checks[1]["message"] or "not compiled with CUDA" in checks[1]["message"] \
        or torch.cuda.is_available()
    assert checks[3]["figures"]["compared_tensors"] > 0
    assert checks[3]["figures"]["max_abs_diff"] == 0.0
    assert checks[4]["figures"]["mismatches"] == 0
    f2 = checks[2]["figures"]
    assert f2["train"]["input_frames_with_nonzero_gradient"] > 0 and f2["train"]["parameter_gradients"] > 0
    assert f2["infer"]["saliency_frames_all_zero"] < f2["infer"]["saliency_frames"]
    # every kind of tensor is compared: outputs, parameter and input gradients of both paths
    sections = checks[3]["figures"]["sections"]
    for sec in ("train", "train_grads", "train_input_grads", "infer", "saliency"):
        assert sections[sec]["compared_tensors"] > 0 and sections[sec]["problem_count"] == 0, sec
    fix = report["fix"]
    assert fix["totals"]["fixed"] > 0 and fix["totals"]["left"] == 0
    md = (out / "report.md").read_text()
    assert "| 3 |" in md and "**PASS**" in md and "saliency.png" in md


@pytest.mark.slow
def test_copies_are_distinct_and_only_fixed_changes(full_run):
    out = full_run[0]
    orig_name, fixed_name = workspace.package_names(str(PACKAGE))
    orig = out / "packages" / orig_name
    fixed = out / "packages" / fixed_name
    assert (orig / "track_module.py").read_text() == (PACKAGE / "track_module.py").read_text()
    assert '.to("cuda")' not in (fixed / "track_module.py").read_text()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the broken fix may fail elsewhere")
def test_broken_fix_fails_with_a_clear_message(tmp_path):
    rc, text, _ = _run(tmp_path, "--mutate-fix", "wrong-device", "--no-figure", "-q")
    assert rc == 1, text
    assert "harness: FAILED (exit 1)" in text
    assert "FAIL check 4 (fixed under the virtual accelerator: no device mismatch)" in text
    assert "meta_architecture.py" in text and "device mismatch" in text
    report = json.loads((tmp_path / "report.json").read_text())
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status[4] == "FAIL" and status[3] == "PASS"
    assert report["fix"]["mutation"]["after"] == 'device="cpu"'
    assert report["checks"][3]["figures"]["mismatches"] > 0


def test_bad_package_is_a_setup_failure(tmp_path):
    rc, text, _ = _run(tmp_path, "--package", str(tmp_path / "nope"))
    assert rc == 1
    assert "SETUP FAILED" in text and "not a Python package" in text
    assert (tmp_path / "report.json").is_file()


def test_mutation_rewrites_one_expression(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = f(device=self.device)\ny = g(device=self.device)\n")
    info = workspace.mutate_fix(str(pkg), "wrong-device")
    assert info["line"] == 1
    assert (pkg / "a.py").read_text() == 'x = f(device="cpu")\ny = g(device=self.device)\n'
    with pytest.raises(ValueError):
        workspace.mutate_fix(str(pkg), "nonsense")


def test_fix_package_counts(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text("import torch\n\n\ndef f():\n    return torch.zeros(2).to('cuda')\n")
    summary = workspace.fix_package(str(pkg))
    assert summary.total("found") >= 1
    assert summary.total("fixed") + summary.total("left") == summary.total("found")
    assert summary.files_changed == ["m.py"] or summary.total("fixed") == 0


def test_compare_and_move():
    a = {"x": torch.ones(2), "y": [torch.tensor([1, 2])]}
    b = move(a, "cpu")
    assert compare(flatten(a), flatten(b)).ok
    c = {"x": torch.ones(2) + 1e-7, "y": [torch.tensor([1, 2])]}
    bitwise = compare(flatten(a), flatten(c))
    assert not bitwise.ok and bitwise.max_abs_diff > 0
    assert compare(flatten(a), flatten(c), rtol=1e-4, atol=1e-5).ok
    d = {"x": torch.ones(2), "y": [torch.tensor([1, 3])]}
    assert "elements differ" in compare(flatten(a), flatten(d), rtol=1, atol=1).problems[0]
    assert "structure" in compare(flatten(a), flatten({"x": torch.ones(2)})).problems[0]


_OWN_MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        bias = torch.ones(y.shape[1]).to("cuda")
        return y + bias[None, :, None, None]
'''

_OWN_API = '''
import torch
from .model import Net


def build(train=False):
    torch.manual_seed(0)
    return Net().train(train)


def make_inputs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 8, 8, generator=g)


def objective(outputs):
    return outputs.float().sum()
'''


def test_own_model_with_entry_point_options(tmp_path):
    pkg = tmp_path / "src" / "tiny_net"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text(_OWN_MODEL)
    (pkg / "hapi.py").write_text(_OWN_API)
    out = tmp_path / "out"
    rc, text, _ = _run(out, "--package", str(pkg), "--builder", "hapi:build", "--inputs", "hapi:make_inputs",
                       "--objective", "hapi:objective", "--no-figure")
    assert rc == 0, text
    report = json.loads((out / "report.json").read_text())
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert [status[i] for i in (1, 2, 3, 4)] == ["PASS"] * 4
    # no --frames function: the float leaf input is differentiated
    assert report["checks"][1]["figures"]["train"]["input_frames_with_gradient"] == 1
    # one site, reported as DEV001 and DEV101 with one shared fix: applied once, both fixed
    assert report["fix"]["fixed"] == {"DEV001": 1, "DEV101": 1}
    assert (pkg / "model.py").read_text() == _OWN_MODEL  # the user's folder is never touched
