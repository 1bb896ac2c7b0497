"""The project harness on plain PyTorch projects (``--project DIR --entry pkg.module:function``).

The fixtures are in ``corpus/harness_projects/``: ``plainnet`` (two packages with
absolute imports, hardcoded CUDA placements the fixer must fix) and ``tvdetect``
(torchvision's Mask R-CNN with random weights, nothing device-specific).
"""
import io
import json
import pathlib
import shutil

import pytest

torch = pytest.importorskip("torch")

from flake8_device.harness import cli as harness_cli  # noqa: E402
from flake8_device.harness import entry  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECTS = REPO / "corpus" / "harness_projects"


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = harness_cli.main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def _harness(tmp_path_factory, name, spec, *extra):
    root = tmp_path_factory.mktemp(name)
    src = root / name
    shutil.copytree(PROJECTS / name, src)
    out = root / "out"
    rc, text, progress = _run("--project", str(src), "--entry", spec, "--out", str(out), *extra)
    report = json.loads((out / "report.json").read_text())
    return {"rc": rc, "text": text, "progress": progress, "report": report, "out": out, "src": src,
            "checks": {c["id"]: c for c in report["checks"]}}


@pytest.fixture(scope="module")
def plainnet(tmp_path_factory):
    return _harness(tmp_path_factory, "plainnet", "apps.entry:build")


# ---------------------------------------------------------------- the contract


def test_entry_result_forms():
    model = torch.nn.Linear(2, 1)
    x = torch.ones(1, 2)
    got = entry.normalise((model, x))
    assert got["model"] is model and got["inputs"] is x and got["train_inputs"] is x
    assert got["objective"] is entry.default_objective and got["paths"] == ["train", "infer"]
    obj = lambda out: out.sum()  # noqa: E731
    assert entry.normalise((model, x, obj))["objective"] is obj
    got = entry.normalise({"model": model, "inputs": x, "train_inputs": (x, x), "paths": ["infer"]})
    assert got["train_inputs"] == (x, x) and got["paths"] == ["infer"]


@pytest.mark.parametrize("bad, words", [
    (torch.nn.Linear(2, 1), "must return"),
    ({"model": torch.nn.Linear(2, 1)}, "must return"),
    ({"model": 3, "inputs": 1}, "not a torch.nn.Module"),
    ({"model": torch.nn.Linear(2, 1), "inputs": 1, "target": 2}, "unknown keys ['target']"),
    ({"model": torch.nn.Linear(2, 1), "inputs": 1, "paths": ["test"]}, "'paths'"),
])
def test_entry_result_of_another_shape_names_the_contract(bad, words):
    with pytest.raises(TypeError) as exc:
        entry.normalise(bad)
    assert words in str(exc.value)


def test_default_objective_sums_the_float_outputs():
    out = {"loss_a": torch.tensor(1.5), "loss_b": torch.tensor([2.0, 0.5]), "ids": torch.tensor([7])}
    assert float(entry.default_objective(out)) == 4.0
    with pytest.raises(TypeError, match="objective"):
        entry.default_objective({"ids": torch.tensor([1])})


def test_entry_needs_module_and_function():
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        entry.resolve("apps.entry.build")
    assert entry.resolve("os.path:join") is __import__("os").path.join


def test_project_takes_config_or_entry(tmp_path):
    rc, _, err = _run("--project", str(tmp_path))
    assert rc == 2 and "--entry MODULE:FUNCTION" in err
    rc, _, err = _run("--project", str(tmp_path), "--entry", "a:b", "--config", "c.yaml")
    assert rc == 2


def test_a_missing_entry_module_is_a_setup_failure(tmp_path):
    (tmp_path / "proj").mkdir()
    out = tmp_path / "out"
    rc, text, _ = _run("--project", str(tmp_path / "proj"), "--entry", "nowhere.mod:build", "--out", str(out),
                       "--no-figure", "-q")
    assert rc == 1 and "SETUP FAILED" in text and "nowhere" in text


# ---------------------------------------------------------------- a multi-package fixture


def test_plainnet_passes_checks_1_to_4(plainnet):
    st = [plainnet["checks"][i]["status"] for i in (1, 2, 3, 4)]
    assert st == ["PASS"] * 4 and plainnet["rc"] == 0, plainnet["text"]
    c1 = plainnet["checks"][1]
    assert "netlib/blocks.py" in c1["message"] and "device" in c1["message"].lower() + "nvidia"


def test_plainnet_fixes_both_packages(plainnet):
    fix = plainnet["report"]["fix"]
    assert set(fix["files_changed"]) == {"apps/model.py", "netlib/blocks.py"}
    assert fix["totals"]["left"] == 0
    fixed = (plainnet["out"] / "project" / "fixed" / "apps" / "model.py").read_text()
    assert ".cuda()" not in fixed
    assert (plainnet["src"] / "apps" / "model.py").read_text() == (PROJECTS / "plainnet/apps/model.py").read_text()


def test_plainnet_compares_every_kind_of_tensor(plainnet):
    secs = plainnet["checks"][3]["figures"]["sections"]
    for sec in ("state", "inputs", "train", "train_grads", "train_input_grads", "infer", "captured", "saliency"):
        assert secs[sec]["compared_tensors"] > 0, sec
        assert secs[sec]["equal_tensors"] == secs[sec]["compared_tensors"], sec
    # the 0-dim temperature parameter gets its gradient compared
    assert plainnet["checks"][2]["figures"]["train"]["parameter_gradients"] == 7
    assert plainnet["checks"][4]["figures"]["mismatches"] == 0
    md = (plainnet["out"] / "report.md").read_text()
    assert "plain PyTorch project" in md and "apps.entry:build" in md


# ---------------------------------------------------------------- torchvision Mask R-CNN


@pytest.mark.slow
def test_torchvision_mask_rcnn_passes_checks_2_to_4(tmp_path_factory):
    pytest.importorskip("torchvision")
    run = _harness(tmp_path_factory, "tvdetect", "detect_entry.maskrcnn:build", "--no-figure")
    c = run["checks"]
    assert [c[i]["status"] for i in (2, 3, 4)] == ["PASS"] * 3 and run["rc"] == 0, run["text"]
    assert c[1]["status"] == "SKIP" and "already runs on the CPU" in c[1]["message"]
    assert run["report"]["config"]["model"]["class"].endswith("MaskRCNN")
    secs = c[3]["figures"]["sections"]
    assert secs["train"]["compared_tensors"] == 6  # 5 losses and their sum
    assert secs["train_grads"]["compared_tensors"] > 100
    assert secs["infer"]["compared_tensors"] == 4  # boxes, labels, scores, masks
    assert c[3]["figures"]["max_abs_diff"] == 0.0
