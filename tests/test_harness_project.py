"""The harness on a whole detectron2 project (``--project DIR --config FILE``).

A small project written here runs end to end on every machine; the real
DVIS-DAQ (``../shared/realworld/DVIS_DAQ``) runs end to end where it exists.
"""
import io
import json
import pathlib
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("detectron2")

from flake8_device.harness import cli as harness_cli  # noqa: E402
from flake8_device.harness import d2, project  # noqa: E402
from flake8_device.harness.tensors import compare  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
REAL_DAQ = REPO.parent / "shared" / "realworld" / "DVIS_DAQ"
DAQ_CONFIG = "configs/dvis_daq/ytvis19/DAQ_Online_R50.yaml"

TINY = {
    "train_net.py": '''
        import torch
        from detectron2.config import get_cfg
        from detectron2.projects.deeplab import add_deeplab_config
        from tinyproj import add_tiny_config


        def setup(args):
            cfg = get_cfg()
            add_deeplab_config(cfg)
            add_tiny_config(cfg)
            cfg.merge_from_file(args.config_file)
            return cfg
    ''',
    "tinyproj/__init__.py": '''
        from .config import add_tiny_config
        from .model import TinyVideo
    ''',
    "tinyproj/config.py": '''
        from detectron2.config import CfgNode as CN


        def add_tiny_config(cfg):
            cfg.MODEL.TINY = CN()
            cfg.MODEL.TINY.HIDDEN = 8
    ''',
    "tinyproj/model.py": '''
        import torch
        from torch import nn
        from detectron2.modeling import META_ARCH_REGISTRY
        from detectron2.structures import ImageList


        @META_ARCH_REGISTRY.register()
        class TinyVideo(nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.backbone = nn.Conv2d(3, cfg.MODEL.TINY.HIDDEN, 3, padding=1)
                self.head = nn.Linear(cfg.MODEL.TINY.HIDDEN, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES + 1)
                self.register_buffer("pixel_mean", torch.Tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
                self.register_buffer("pixel_std", torch.Tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)

            @property
            def device(self):
                return self.pixel_mean.device

            def forward(self, batched_inputs):
                frames = [(f.to(self.device) - self.pixel_mean) / self.pixel_std
                          for video in batched_inputs for f in video["image"]]
                images = ImageList.from_tensors(frames, 32)
                feats = self.backbone(images.tensor).mean(dim=(2, 3))
                logits = self.head(feats)
                if self.training:
                    labels = torch.cat([inst.gt_classes[:1] for video in batched_inputs
                                        for inst in video["instances"]]).to("cuda")
                    return {"loss_ce": nn.functional.cross_entropy(logits, labels),
                            "loss_reg": (logits ** 2).mean() * 0.1}
                scores = torch.zeros(logits.shape[0]).to("cuda") + logits.softmax(-1).max(-1).values
                return {"scores": scores, "labels": [int(i) for i in logits.argmax(-1)]}
    ''',
    "configs/tiny.yaml": '''
        MODEL:
          META_ARCHITECTURE: "TinyVideo"
          SEM_SEG_HEAD:
            NUM_CLASSES: 5
        DATASETS:
          TRAIN: ("ytvis_2019_train",)
          TEST: ("ytvis_2019_val",)
    ''',
}


def _write_tiny(root: pathlib.Path) -> pathlib.Path:
    for rel, text in TINY.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = harness_cli.main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- pieces


def test_read_setup_follows_the_training_script(tmp_path):
    root = _write_tiny(tmp_path / "proj")
    found = d2.read_setup(str(root / "train_net.py"), str(root))
    assert found["setup"] == ["detectron2.projects.deeplab:add_deeplab_config", "tinyproj:add_tiny_config"]
    assert found["imports"] == ["tinyproj"]  # detectron2 is not the project's
    assert d2.find_training_script(str(root)) == str(root / "train_net.py")


def test_read_setup_without_setup_calls_says_so(tmp_path):
    (tmp_path / "train.py").write_text("def setup(args):\n    return None\n")
    with pytest.raises(ValueError, match="--setup"):
        d2.read_setup(str(tmp_path / "train.py"), str(tmp_path))


@pytest.mark.skipif(not REAL_DAQ.is_dir(), reason="../shared/realworld/DVIS_DAQ is absent (a user's clone has none)")
def test_read_setup_of_the_real_dvis_daq():
    found = d2.read_setup(str(REAL_DAQ / "train_net_video.py"), str(REAL_DAQ))
    assert found["setup"] == [
        "detectron2.projects.deeplab:add_deeplab_config", "mask2former:add_maskformer2_config",
        "mask2former_video:add_maskformer2_video_config", "dvis_Plus:add_minvis_config",
        "dvis_Plus:add_dvis_config", "dvis_Plus:add_ctvis_config", "dvis_daq.config:add_daq_config",
    ]
    assert set(found["imports"]) == {"mask2former", "mask2former_video", "dvis_Plus", "dvis_daq.config"}


def test_image_list_with_grad_frames_fails_in_detectron2_and_works_in_the_harness():
    from detectron2.structures import ImageList

    frames = [torch.rand(3, 30, 40, requires_grad=True), torch.rand(3, 28, 44, requires_grad=True)]
    with pytest.raises(RuntimeError):
        ImageList.from_tensors(frames, 32).tensor.sum().backward()
    with torch.no_grad():
        want = ImageList.from_tensors([f.detach() for f in frames], 32)
    with d2.grad_safe_image_list():
        got = ImageList.from_tensors(frames, 32)
        (got.tensor * 2).sum().backward()
    assert ImageList.from_tensors is not None and "grad_safe" not in repr(ImageList.__dict__["from_tensors"])
    assert torch.equal(got.tensor, want.tensor) and got.image_sizes == want.image_sizes
    for f in frames:
        assert torch.equal(f.grad, torch.full_like(f, 2.0))


def test_tensor_digest_is_bitwise():
    a = torch.randn(4, 5)
    assert torch.equal(d2.tensor_digest(a), d2.tensor_digest(a.clone()))
    b = a.clone()
    b[0, 0] = torch.nextafter(b[0, 0], torch.tensor(1e9))
    assert not torch.equal(d2.tensor_digest(a), d2.tensor_digest(b))
    assert not torch.equal(d2.tensor_digest(a), d2.tensor_digest(a.reshape(5, 4)))
    assert not torch.equal(d2.tensor_digest(a), d2.tensor_digest(a.double()))


def test_flatten_with_scalars_turns_numbers_into_tensors():
    from flake8_device.harness.tensors import flatten

    out = flatten({"b": [1, 2.5, True], "a": torch.ones(2), "s": "text"}, "out", scalars=True)
    names = [n for n, _ in out]
    assert names == ["out['a']", "out['b'][0]", "out['b'][1]", "out['b'][2]"]
    assert out[1][1].dtype == torch.int64 and out[2][1].dtype == torch.float64 and out[3][1].dtype == torch.bool


def test_video_inputs_look_like_the_mapper_output():
    size = {"frames": 3, "height": 64, "width": 96, "channels": 3, "divisibility": 32}
    video = d2.video_inputs(size, 40, seed=0)[0]
    assert len(video["image"]) == len(video["instances"]) == 3
    assert video["image"][0].dtype == torch.uint8 and video["image"][0].shape == (3, 64, 96)
    inst = video["instances"][1]
    assert set(inst.get_fields()) == {"gt_boxes", "gt_classes", "gt_ids", "gt_masks"}
    assert inst.gt_masks.tensor.dtype == torch.bool and bool(inst.gt_masks.tensor.any())
    assert int(inst.gt_classes.max()) < 40
    again = d2.video_inputs(size, 40, seed=0)[0]
    assert all(torch.equal(a, b) for a, b in zip(video["image"], again["image"]))


def _result(**sections):
    return {"sections": sections, "errors": {}, "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}


def test_check3_fails_on_one_differing_gradient_and_names_it():
    g = torch.randn(3)
    g2 = g.clone()
    g2[1] += 1e-6
    ref = _result(train=[("objective", torch.tensor(1.0))], train_grads=[("w", g)])
    fx = _result(train=[("objective", torch.tensor(1.0))], train_grads=[("w", g2)])
    check = project.CheckResult(3, "x")
    project._check3(check, ref, fx, compare)
    assert check.status == project.FAIL and "train_grads: w: not bitwise equal" in check.message
    check = project.CheckResult(3, "x")
    project._check3(check, ref, ref, compare)
    assert check.status == project.PASS and check.figures["compared_tensors"] == 2


def test_check2_does_not_call_zero_saliency_non_zero():
    r = _result(train=[("objective", torch.tensor(1.0))], train_grads=[("w", torch.ones(2)), ("b", torch.zeros(2))],
                infer=[("out", torch.ones(1))], saliency=[("f0", torch.zeros(3, 2, 2)), ("f1", torch.ones(3, 2, 2))])
    r["facts"].update(train_objective=1.0, losses=1)
    check = project.CheckResult(2, "x")
    project._check2(check, r, __import__("flake8_device.harness.tensors", fromlist=["all_finite"]).all_finite)
    assert check.status == project.PASS
    assert "1 non-zero, 1 all zero" in check.message and "non-zero on 1 of 2 frames" in check.message
    r["sections"]["saliency"] = [("f0", torch.zeros(3, 2, 2))]
    check = project.CheckResult(2, "x")
    project._check2(check, r, __import__("flake8_device.harness.tensors", fromlist=["all_finite"]).all_finite)
    assert check.status == project.FAIL and "zero on every frame" in check.message


def test_project_options_need_each_other(tmp_path):
    rc, _, err = _run("--project", str(tmp_path), "--out", str(tmp_path / "o"))
    assert rc == 2 and "either --config FILE" in err and "--entry MODULE:FUNCTION" in err


def test_missing_config_is_a_setup_failure(tmp_path):
    root = _write_tiny(tmp_path / "proj")
    rc, text, _ = _run("--project", str(root), "--config", "configs/none.yaml", "--out", str(tmp_path / "o"), "-q")
    assert rc == 1 and "SETUP FAILED" in text and "no such file" in text


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_small_project_end_to_end(tmp_path):
    root = _write_tiny(tmp_path / "proj")
    out = tmp_path / "out"
    rc, text, progress = _run("--project", str(root), "--config", "configs/tiny.yaml", "--out", str(out),
                              "--num-frames", "2", "--size", "30x40", "--no-figure")
    report = json.loads((out / "report.json").read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert rc == 0, text
    assert [checks[i]["status"] for i in (1, 2, 3, 4)] == ["PASS"] * 4
    assert checks[5]["status"] == ("PASS" if torch.cuda.is_available() else "SKIP")
    assert "device" in checks[1]["message"].lower() or "cuda" in checks[1]["message"].lower()
    secs = checks[3]["figures"]["sections"]
    # this model differentiates its input in training: input gradients are compared there too
    assert secs["train_input_grads"]["compared_tensors"] == 2
    assert secs["train"]["compared_tensors"] == 3  # two losses and their sum
    assert secs["train_grads"]["compared_tensors"] == 4
    assert secs["state"]["compared_tensors"] == 4  # the pixel buffers are not persistent
    assert checks[3]["figures"]["max_abs_diff"] == 0.0
    assert checks[4]["figures"]["mismatches"] == 0
    assert report["config"]["setup_functions"][-1] == "tinyproj:add_tiny_config"
    assert report["config"]["model"]["class"] == "tinyproj.model.TinyVideo"
    assert report["fix"]["totals"]["fixed"] >= 2
    # the original copy is the project's code; the fixed one changed
    assert (out / "project" / "original" / "tinyproj" / "model.py").read_text() == (root / "tinyproj" / "model.py").read_text()
    assert '"cuda"' not in (out / "project" / "fixed" / "tinyproj" / "model.py").read_text()
    md = (out / "report.md").read_text()
    assert "random" in md and "Not proven" in md or torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DAQ.is_dir(), reason="../shared/realworld/DVIS_DAQ is absent (a user's clone has none)")
def test_real_dvis_daq_one_command(tmp_path):
    """The documented command on a clean copy of the real DVIS-DAQ: checks 1-4 pass."""
    out = tmp_path / "out"
    rc, text, progress = _run("--project", str(REAL_DAQ), "--config", DAQ_CONFIG, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert rc == 0, text + progress
    assert [checks[i]["status"] for i in (1, 2, 3, 4)] == ["PASS"] * 4
    assert checks[5]["status"] == ("PASS" if torch.cuda.is_available() else "SKIP")
    assert report["config"]["model"]["class"] == "dvis_daq.meta_architecture.DVIS_DAQ_online"
    secs = checks[3]["figures"]["sections"]
    assert secs["state"]["compared_tensors"] == 800
    assert secs["train"]["compared_tensors"] == 40  # 39 losses and their sum
    assert secs["train_grads"]["compared_tensors"] == 236
    assert "train_input_grads" not in secs  # the frozen segmenter runs under no_grad in training
    assert report["config"]["inputs_detail"]["frames"] == 5  # the config's INPUT.SAMPLING_FRAME_NUM
    assert secs["infer"]["compared_tensors"] > 0 and secs["saliency"]["compared_tensors"] == 5
    assert checks[3]["figures"]["max_abs_diff"] == 0.0
    assert checks[4]["figures"]["mismatches"] == 0
    assert (out / "saliency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    original_fix = report["config"]["original_fix"]
    assert original_fix["fixed"] == {"DEV009": 1}  # the original copy differs only by the extension import
