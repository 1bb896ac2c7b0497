"""The bundled DVIS-DAQ-style model (corpus/dvis_daq).

The unmodified package must fail on a machine without CUDA as soon as it hits
one of its hardcoded devices. A copy with every "cuda" literal textually turned
into "cpu" (a crude patch used only here) must train and infer on the CPU,
with finite outputs, non-zero input gradients and bitwise-repeatable results.
"""
import importlib
import pathlib
import shutil
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("detectron2")
pytest.importorskip("scipy")

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "corpus" / "dvis_daq"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="module")
def original():
    return importlib.import_module("corpus.dvis_daq.api")


@pytest.fixture(scope="module")
def patched(tmp_path_factory):
    root = tmp_path_factory.mktemp("patched")
    dest = root / "dvis_daq_cpu_patched"
    shutil.copytree(PACKAGE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for path in dest.iterdir():
        if path.suffix in (".py", ".yaml"):
            path.write_text(path.read_text().replace('"cuda"', '"cpu"'))
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("dvis_daq_cpu_patched.api")
    finally:
        sys.path.remove(str(root))


def run(api, train, seed=0):
    model = api.build(train=train)
    inputs = api.make_inputs(num_frames=3, size=64, seed=seed)
    frames = api.input_frames(inputs)
    for frame in frames:
        frame.requires_grad_(True)
    outputs = model(inputs)
    objective = api.scalar_objective(outputs)
    objective.backward()
    return model, outputs, objective, [frame.grad for frame in frames]


def test_builds_through_detectron2(original):
    from detectron2.modeling import META_ARCH_REGISTRY

    cfg = original.get_cfg_for_model()
    assert cfg.MODEL.META_ARCHITECTURE == original.DVISDAQToy.registry_name
    assert META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE) is original.DVISDAQToy
    model = original.build(cfg)
    assert type(model) is original.DVISDAQToy
    assert not model.training
    assert model.device == torch.device("cpu")
    assert original.build(train=True).training
    # Same seed, same weights.
    again = original.build()
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_inputs_are_detectron2_style(original):
    from detectron2.structures import Instances

    video = original.make_inputs(num_frames=4, size=64)[0]
    assert len(video["image"]) == 4 and video["height"] == 64 and video["width"] == 64
    assert all(f.dtype == torch.float32 and f.shape == (3, 64, 64) and f.is_leaf for f in video["image"])
    assert all(isinstance(inst, Instances) for inst in video["instances"])
    ids = video["instances"][-1].gt_ids.tolist()
    assert -1 in ids  # one object has left by the last frame
    assert "instances" not in original.make_inputs(with_targets=False)[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("train", [True, False])
def test_original_fails_without_cuda(original, train):
    model = original.build(train=train)
    with pytest.raises(RuntimeError, match="NVIDIA driver|not compiled with CUDA"):
        model(original.make_inputs())


def test_copies_build_their_own_classes(original, patched):
    assert original.DVISDAQToy is not patched.DVISDAQToy
    assert original.DVISDAQToy.registry_name != patched.DVISDAQToy.registry_name
    assert type(patched.build()) is patched.DVISDAQToy
    assert type(original.build()) is original.DVISDAQToy


def test_patched_training_runs_on_cpu(patched):
    model, losses, objective, grads = run(patched, train=True)
    assert set(losses) == {
        "loss_ce", "loss_mask", "loss_dice", "loss_track_ce", "loss_track_mask",
        "loss_track_dice", "loss_disappear",
    }
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert torch.isfinite(objective)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    param_grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert param_grads and all(torch.isfinite(g).all() for g in param_grads)


def test_patched_inference_runs_on_cpu(patched):
    _, results, objective, grads = run(patched, train=False)
    assert len(results) == 1
    res = results[0]
    k = res["pred_scores"].shape[0]
    assert k > 0
    assert res["pred_labels"].shape == (k,) and res["pred_ids"].shape == (k,)
    assert res["pred_masks"].shape == (k, 3, 64, 64) and res["pred_masks"].dtype == torch.bool
    assert res["pred_mask_probs"].shape == (k, 3, 64, 64)
    assert torch.isfinite(res["pred_scores"]).all() and torch.isfinite(res["pred_mask_probs"]).all()
    assert torch.isfinite(objective)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("train", [True, False])
def test_patched_runs_are_bitwise_repeatable(patched, train):
    model_a, _, obj_a, grads_a = run(patched, train=train)
    model_b, _, obj_b, grads_b = run(patched, train=train)
    assert torch.equal(obj_a, obj_b)
    for a, b in zip(grads_a, grads_b):
        assert torch.equal(a, b)
    for (name, pa), (_, pb) in zip(model_a.named_parameters(), model_b.named_parameters()):
        if pa.grad is None:
            assert pb.grad is None, name
        else:
            assert torch.equal(pa.grad, pb.grad), name


def test_patched_inference_falls_back_on_out_of_memory(patched, monkeypatch):
    model = patched.build()
    real = type(model).common_inference
    calls = []

    def flaky(self, frames, to_store="cpu"):
        calls.append(to_store)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, frames, to_store=to_store)

    monkeypatch.setattr(type(model), "common_inference", flaky)
    with torch.no_grad():
        results = model(patched.make_inputs())
    assert len(calls) == 2 and calls[1] == "cpu"
    assert results[0]["pred_scores"].shape[0] > 0


def test_patched_inference_reraises_other_errors(patched, monkeypatch):
    model = patched.build()

    def broken(self, frames, to_store="cpu"):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(type(model), "common_inference", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with torch.no_grad():
            model(patched.make_inputs())
