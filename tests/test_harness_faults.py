"""The project harness on detectron2 projects of the Mask2Former family.

Each test holds one trait of a real project that once made the plain command
(``flake8-device-harness --project DIR --config FILE``) fail although the fix
was right. The small projects are in ``corpus/harness_projects/`` (see its
README); one harness run per project is shared by the tests that read it.
"""
import io
import json
import pathlib
import shutil
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("detectron2")

from flake8_device.harness import cli as harness_cli  # noqa: E402
from flake8_device.harness import d2, project  # noqa: E402
from flake8_device.harness.project_report import write_project_markdown  # noqa: E402
from flake8_device.harness.runner import HarnessReport  # noqa: E402
from flake8_device.harness.tensors import all_finite  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECTS = REPO / "corpus" / "harness_projects"


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = harness_cli.main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def _harness(tmp_path_factory, name, config, *extra):
    root = tmp_path_factory.mktemp(name)
    src = root / name
    shutil.copytree(PROJECTS / name, src)
    out = root / "out"
    rc, text, progress = _run("--project", str(src), "--config", config, "--out", str(out), "--size", "32x32",
                              "--no-figure", *extra)
    report = json.loads((out / "report.json").read_text())
    return {"rc": rc, "text": text, "progress": progress, "report": report, "out": out, "src": src,
            "checks": {c["id"]: c for c in report["checks"]}}


@pytest.fixture(scope="module")
def clipnet(tmp_path_factory):
    return _harness(tmp_path_factory, "clipnet", "configs/clip4.yaml")


@pytest.fixture(scope="module")
def plainseg(tmp_path_factory):
    return _harness(tmp_path_factory, "plainseg", "configs/plainseg.yaml")


def _status(run):
    return [run["checks"][i]["status"] for i in (1, 2, 3, 4)]


def test_video_project_passes_with_the_plain_command(clipnet):
    assert clipnet["rc"] == 0, clipnet["text"] + clipnet["progress"]
    assert _status(clipnet) == ["PASS"] * 4
    assert clipnet["checks"][3]["figures"]["max_abs_diff"] == 0.0
    assert "weak_evidence" not in clipnet["checks"][3]["figures"]


# 1. weights shared with their _metadata; a failed load names the keys

def test_shared_weights_keep_the_module_versions(clipnet):
    facts = clipnet["report"]["config"]["facts"]
    assert facts["fixed_cpu"]["state_loaded_from"].endswith("weights.pt")
    assert facts["fixed_cpu"]["weights_equal_before_load"] is True
    ref = torch.load(clipnet["out"] / "runs" / "weights.pt", weights_only=True)
    assert ref._metadata["head"]["version"] == 2


def test_a_weights_load_failure_names_the_missing_and_unexpected_keys():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    ref = {"0.weight": torch.zeros(3, 2), "0.bias_old": torch.zeros(3)}
    with pytest.raises(RuntimeError) as info:
        d2.load_shared_state(model, ref)
    msg = str(info.value)
    assert "missing key(s) ['0.bias']" in msg and "unexpected key(s) ['0.bias_old']" in msg
    assert "_metadata" in msg  # the plain dict carries no module versions: said, since it is a usual cause


# 2. the clip length is the config's

def test_the_clip_has_the_config_length(clipnet):
    size = clipnet["report"]["config"]["inputs_detail"]
    assert size["frames"] == 4 and size["frames_from"] == "INPUT.SAMPLING_FRAME_NUM"
    assert clipnet["checks"][2]["figures"]["train"]["losses"] == 2


# 3. compared passes as a user runs them; gradients in an optional pass

def test_inference_runs_under_no_grad_and_gradients_come_from_their_own_pass(clipnet):
    # the model hands its scores to NumPy in inference: only possible without autograd
    assert "infer" not in clipnet["report"]["config"]["facts"]["fixed_cpu"].get("errors", {})
    secs = clipnet["checks"][3]["figures"]["sections"]
    assert secs["infer"]["compared_tensors"] >= 2
    assert secs["train_input_grads"]["compared_tensors"] == 4  # one per frame, from the gradient pass
    # its inference path cannot give a saliency: said, not failed
    note = clipnet["checks"][2]["figures"]["infer"]["saliency_note"]
    assert note.startswith("not available: ") and "numpy" in note.lower()


# 4. a model that infers under no_grad: check 2 passes and report.md is written

def test_no_saliency_is_reported_not_failed_and_the_report_is_written(tmp_path):
    r = {"sections": {"train": [("objective", torch.tensor(1.0))], "train_grads": [("w", torch.ones(2))],
                      "infer": [("out", torch.ones(3))], "captured": [], "saliency": []},
         "errors": {}, "facts": {"train_objective": 1.0, "losses": 1, "captured_from": ["backbone"],
                                 "saliency": "not available: no captured tensor depends on the input frames"},
         "model": {}, "mismatches": {}, "seconds": {}}
    check = project.CheckResult(2, "fixed trains and infers")
    project._check2(check, r, all_finite)
    assert check.status == project.PASS, check.message
    assert "saliency not available: no captured tensor" in check.message
    report = HarnessReport(config={"project": "p", "out": str(tmp_path), "config_file": "c.yaml", "opts": [],
                                   "unsafe_fixes": True, "facts": {"fixed_cpu": r["facts"]}},
                           environment={})
    report.checks.append(check)
    write_project_markdown(report, str(tmp_path / "report.md"))
    assert "saliency not available" in (tmp_path / "report.md").read_text()


def test_image_model_inferring_under_no_grad_passes(plainseg):
    assert plainseg["rc"] == 0, plainseg["text"] + plainseg["progress"]
    assert _status(plainseg)[1:] == ["PASS"] * 3
    assert "not available" in plainseg["checks"][2]["figures"]["infer"]["saliency_note"]
    assert (plainseg["out"] / "report.md").is_file()


# 5. 0-dim parameters

def test_tensor_digest_of_a_0_dim_tensor():
    a = torch.tensor(1.5)
    assert d2.tensor_digest(a).shape == (32,)
    assert torch.equal(d2.tensor_digest(a), d2.tensor_digest(a.clone()))
    assert not torch.equal(d2.tensor_digest(a), d2.tensor_digest(torch.tensor(2.5)))
    assert not torch.equal(d2.tensor_digest(a), d2.tensor_digest(a.reshape(1)))


def test_0_dim_parameter_is_compared(clipnet):
    assert clipnet["checks"][3]["figures"]["sections"]["state"]["problems"] == []
    assert clipnet["report"]["config"]["model"]["parameter_tensors"] == 8


# 6. the set-up script whose setup() accepts the config

def test_the_setup_script_is_the_one_that_accepts_the_config(clipnet):
    c = clipnet["report"]["config"]
    assert c["setup_from"] == "train_net_video.py"
    assert [r["script"] for r in c["setups_rejected"]] == ["train_net.py"]
    assert "Non-existent config key" in c["setups_rejected"][0]["error"]
    assert "`train_net.py` rejected the config" in (clipnet["out"] / "report.md").read_text()


def test_scripts_under_projects_are_candidates(tmp_path):
    (tmp_path / "projects" / "Sub").mkdir(parents=True)
    for p in ("train_net.py", "tools/train.py", "projects/Sub/train_net.py", "projects/Sub/train_video.py"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("")
    got = [str(pathlib.Path(s).relative_to(tmp_path)) for s in d2.training_scripts(str(tmp_path))]
    assert got == ["train_net.py", "projects/Sub/train_net.py", "projects/Sub/train_video.py", "tools/train.py"]


def test_no_script_accepting_the_config_names_the_candidates_and_the_option(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(PROJECTS / "clipnet", root)
    (root / "train_net_video.py").unlink()
    rc, text, _ = _run("--project", str(root), "--config", "configs/clip4.yaml", "--out", str(tmp_path / "o"), "-q")
    assert rc == 1 and "SETUP FAILED" in text
    assert "Non-existent config key" in text and "--setup-script" in text
    assert not any(c["status"] == "FAIL" for c in json.loads((tmp_path / "o" / "report.json").read_text())["checks"])


# 7. the class count of the model's own config node

def test_class_count_from_the_model_own_node(clipnet):
    facts = clipnet["report"]["config"]["facts"]["fixed_cpu"]
    assert facts["num_classes"] == 3
    assert facts["class_counts"]["MODEL.CLIPNET.NUM_CLASSES"] == 3


def test_num_classes_is_the_smallest_count():
    from detectron2.config import CfgNode as CN
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.MODEL.FOO = CN()
    cfg.MODEL.FOO.NUM_CLASSES = 7
    assert d2.num_classes(cfg) == 7
    cfg.MODEL.FOO.NUM_CLASSES = 200
    assert d2.num_classes(cfg) == min(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, cfg.MODEL.ROI_HEADS.NUM_CLASSES)


# 8. image inputs for image models

def test_image_inputs_follow_the_image_mapper(plainseg):
    c = plainseg["report"]["config"]
    assert c["input_format"] == "image" and "coco_2017_train_stuff_sem_seg" in c["input_format_from"]
    assert c["inputs_detail"]["frames"] == 1
    assert plainseg["checks"][2]["figures"]["train"]["losses"] == 2


def test_image_inputs_look_like_the_mapper_output():
    size = {"frames": 1, "height": 32, "width": 64, "channels": 3, "divisibility": 32, "format": "image"}
    x = d2.image_inputs(size, 4, seed=0)[0]
    assert x["image"].shape == (3, 32, 64) and x["image"].dtype == torch.uint8
    assert x["instances"].gt_masks.dtype == torch.uint8 and x["instances"].gt_masks.shape[1:] == (32, 64)
    assert x["sem_seg"].shape == (32, 64) and int(x["sem_seg"].max()) < 4
    assert x["height"] == 32 and x["width"] == 64


@pytest.mark.parametrize("train,test,fmt", [
    (("ytvis_2019_train",), ("ytvis_2019_val",), "video"), (("ovis_train",), (), "video"),
    (("coco_2017_train",), ("coco_2017_val",), "image"), (("lvis_v1_train",), (), "image"),
    (("ade20k_sem_seg_train",), (), "image"),
])
def test_input_format_from_the_datasets(train, test, fmt):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = train, test
    assert d2.input_format(cfg)[0] == fmt


# 9. an original that already runs on the CPU

def test_check1_skips_when_the_original_runs_on_the_cpu(plainseg):
    c1 = plainseg["checks"][1]
    assert c1["status"] == "SKIP" and "already runs on the CPU" in c1["message"]
    assert plainseg["rc"] == 0


# 10. set-up problems are set-up problems; weak evidence is said

def test_a_missing_package_is_a_setup_failure_that_names_what_to_install(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(PROJECTS / "clipnet", root)
    model = root / "clipnet" / "model.py"
    model.write_text("import panopticapi_absent_here\n" + model.read_text())
    rc, text, _ = _run("--project", str(root), "--config", "configs/clip4.yaml", "--out", str(tmp_path / "o"), "-q")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 1 and "SETUP FAILED" in text and "could not run the model" in text
    assert "missing package 'panopticapi_absent_here': pip install panopticapi_absent_here" in text
    assert not any(c["status"] == "FAIL" for c in report["checks"])
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Nothing is proven either way" in md and "already runs on this CPU" not in md


def test_known_packages_are_named_by_their_index_name():
    hint = d2.missing_package_hint(ModuleNotFoundError("No module named 'panopticapi'", name="panopticapi"))
    assert "panopticapi-lite" in hint and "source repository" in hint
    assert "opencv-python-headless" in d2.missing_package_hint(ModuleNotFoundError("x", name="cv2.cv2"))
    assert d2.missing_package_hint(ValueError("x")) is None


def test_capture_hooks_that_see_nothing_are_weak_evidence(plainseg):
    c3 = plainseg["checks"][3]
    assert c3["status"] == "PASS"
    weak = c3["figures"]["weak_evidence"]
    assert any("none of the capture hooks fired" in w for w in weak)
    assert "WEAK EVIDENCE" in c3["message"]
    assert "Weak evidence" in (plainseg["out"] / "report.md").read_text()


def _res(**errors):
    return {"sections": {}, "errors": {k: {"type": "E", "text": v, "where": "m.py:1: x"} for k, v in errors.items()},
            "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}


def test_check1_counts_an_error_the_virtual_accelerator_does_not_raise_as_the_device():
    check = project.CheckResult(1, "x")
    project._check1(check, _res(train="AssertionError: ", infer="AssertionError: "), _res())
    assert check.status == project.PASS
    check = project.CheckResult(1, "x")
    project._check1(check, _res(train="AssertionError: "), _res(train="AssertionError: "))
    assert check.status == project.FAIL  # fails the same under the virtual accelerator: not the device


def test_read_setup_follows_module_attribute_calls_and_setup_functions_by_other_names(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "train.py").write_text(textwrap.dedent('''
        import pkg.config as pc
        from detectron2.projects import deeplab

        def setup_cfg(args):
            cfg = get_cfg()
            deeplab.add_deeplab_config(cfg)
            pc.add_pkg_config(cfg)
            return cfg
    '''))
    found = d2.read_setup(str(tmp_path / "train.py"), str(tmp_path))
    assert found["setup"] == ["detectron2.projects.deeplab:add_deeplab_config", "pkg.config:add_pkg_config"]
    assert found["imports"] == ["pkg.config"]


def test_a_setup_that_does_not_register_the_model_is_rejected(tmp_path):
    (tmp_path / "c.yaml").write_text('MODEL:\n  META_ARCHITECTURE: "NoSuchArchHere"\n')
    spec = {"root": str(tmp_path), "config": str(tmp_path / "c.yaml"), "device": "cpu",
            "candidates": [{"script": "train_net.py", "setup": [], "imports": []},
                           {"script": "train_video.py", "setup": [], "imports": []}]}
    with pytest.raises(d2.SetupError, match="NoSuchArchHere.*not registered.*--setup-script"):
        d2.choose_setup(spec)


def test_a_model_that_does_not_take_the_format_the_datasets_suggest_gets_the_other(tmp_path):
    # a video model pre-trained on an image dataset (as VITA on COCO, through a clip mapper)
    root = tmp_path / "p"
    shutil.copytree(PROJECTS / "clipnet", root)
    cfg = root / "configs" / "clip4.yaml"
    cfg.write_text(cfg.read_text().replace("ytvis_2019_train", "coco_2017_train").replace("ytvis_2019_val", "coco_2017_val"))
    rc, text, progress = _run("--project", str(root), "--config", "configs/clip4.yaml", "--out", str(tmp_path / "o"),
                              "--size", "32x32", "--no-figure", "-q")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rc == 0, text
    assert report["config"]["input_format"] == "video"
    assert "did not take image inputs" in report["config"]["input_format_from"]
    assert {f["input_format"] for f in report["config"]["facts"].values()} == {"video"}  # every run alike
    assert report["config"]["inputs_detail"]["frames"] == 4


def test_read_setup_resolves_config_functions_the_script_defines(tmp_path):
    (tmp_path / "train_net.py").write_text(textwrap.dedent('''
        from detectron2.projects.deeplab import add_deeplab_config

        def add_local_config(cfg):
            cfg.MODEL.LOCAL = 1

        def setup(args):
            cfg = get_cfg()
            add_deeplab_config(cfg)
            add_local_config(cfg)
            return cfg

        if __name__ == "__main__":
            raise SystemExit("not imported as a script")
    '''))
    found = d2.read_setup(str(tmp_path / "train_net.py"), str(tmp_path))
    assert found["setup"] == ["detectron2.projects.deeplab:add_deeplab_config", "train_net:add_local_config"]


def test_flatten_walks_object_arrays_and_skips_strings():
    import numpy as np

    from flake8_device.harness.tensors import flatten

    rle = np.array([{"size": [2, 2], "counts": b"abc"}, {"size": [2, 2], "counts": b"de"}], dtype=object)
    out = flatten({"rle": rle, "s": np.array(["a", "b"])}, "out", scalars=True)
    assert [n for n, _ in out] == ["out['rle'][0]['size'][0]", "out['rle'][0]['size'][1]",
                                   "out['rle'][1]['size'][0]", "out['rle'][1]['size'][1]"]


def test_a_submodule_reached_through_a_method_is_captured_one_level_down(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(PROJECTS / "plainseg", root)
    model = root / "plainseg" / "model.py"
    model.write_text(model.read_text().replace("F.conv2d(x, self.conv.weight, self.conv.bias, padding=1)", "self.conv(x)")
                     .replace("F.conv2d(x, self.cls.weight, self.cls.bias)", "self.cls(x)"))
    rc, text, _ = _run("--project", str(root), "--config", "configs/plainseg.yaml", "--out", str(tmp_path / "o"),
                       "--size", "32x32", "--no-figure", "-q")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    c3 = {c["id"]: c for c in report["checks"]}[3]
    assert rc == 0, text
    assert c3["figures"]["captured_one_level_down"] == {"backbone": 1, "predictor": 1}
    assert "weak_evidence" not in c3["figures"]
    assert c3["figures"]["sections"]["captured"]["compared_tensors"] == 2


def _hyp():
    return pytest.importorskip("hypothesis")


def test_report_writes_for_any_mix_of_results(tmp_path_factory):
    hypothesis = _hyp()
    st = hypothesis.strategies

    maybe_t = st.sampled_from([None, torch.ones(2), torch.zeros(2), torch.tensor([float("nan")])])
    err = st.sampled_from([None, {"type": "E", "text": "E: boom", "where": "m.py:1: x"}])

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(train=maybe_t, grad=maybe_t, out=maybe_t, sal=maybe_t, e_train=err, e_infer=err, e_build=err,
                      objective=st.sampled_from([None, 1.0, float("inf")]),
                      note=st.sampled_from([None, "not available: why"]))
    def prop(train, grad, out, sal, e_train, e_infer, e_build, objective, note):
        sections = {"train": [("objective", train)] if train is not None else [],
                    "train_grads": [("w", grad)] if grad is not None else [],
                    "infer": [("out", out)] if out is not None else [],
                    "saliency": [("f0", sal)] if sal is not None else [], "captured": []}
        errors = {k: v for k, v in (("train", e_train), ("infer", e_infer), ("build", e_build)) if v}
        facts = {"train_objective": objective, "losses": 1}
        if note:
            facts["saliency"] = note
        r = {"sections": sections, "errors": errors, "facts": facts, "model": {}, "mismatches": {}, "seconds": {}}
        checks = []
        for cid, fn in ((1, project._check1), (2, project._check2), (3, project._check3), (4, project._check4)):
            c = project.CheckResult(cid, f"check {cid}")
            if cid == 2:
                fn(c, r, all_finite)
            elif cid in (3, 4):
                from flake8_device.harness.tensors import compare

                fn(c, r, r, compare)
            else:
                fn(c, r, r)
            assert c.status in (project.PASS, project.FAIL, project.SKIP) and isinstance(c.message, str)
            checks.append(c)
        report = HarnessReport(config={"project": "p", "out": "o", "config_file": "c.yaml", "opts": [],
                                       "unsafe_fixes": True, "facts": {"fixed_cpu": facts}}, environment={})
        report.checks.extend(checks)
        path = tmp_path_factory.mktemp("md") / "report.md"
        write_project_markdown(report, str(path))
        assert path.read_text().startswith("# flake8-device harness report")

    prop()


def test_a_missing_module_of_the_project_itself_is_not_sent_to_the_package_index(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    hint = d2.missing_package_hint(ModuleNotFoundError("x", name="proj.layers._C"), str(tmp_path))
    assert "of the project itself" in hint and "pip install" not in hint
    hint = d2.missing_package_hint(ModuleNotFoundError("x", name="_ext"), str(tmp_path))
    assert "compiled extension" in hint


def test_a_missing_package_in_one_copy_only_names_what_to_install_in_the_check():
    e = {"type": "ModuleNotFoundError", "text": "ModuleNotFoundError: No module named 'cv2'", "where": "a.py:1: x",
         "hint": d2.missing_package_hint(ModuleNotFoundError("x", name="cv2"))}
    ref = {"sections": {}, "errors": {"setup": e}, "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}
    check = project.CheckResult(3, "x")
    project._check3(check, ref, ref, None)
    assert check.status == project.FAIL and "pip install opencv-python-headless" in check.message


def test_a_path_the_harness_cannot_run_is_left_out_and_said(tmp_path):
    # training that needs what the synthetic inputs lack (two videos per batch): both copies fail alike
    root = tmp_path / "p"
    shutil.copytree(PROJECTS / "clipnet", root)
    model = root / "clipnet" / "model.py"
    model.write_text(model.read_text().replace(
        "    def forward(self, batched_inputs):\n",
        "    def forward(self, batched_inputs):\n"
        "        if self.training and len(batched_inputs) < 2:\n"
        "            raise ValueError('training needs two videos per batch')\n"))
    rc, text, _ = _run("--project", str(root), "--config", "configs/clip4.yaml", "--out", str(tmp_path / "o"),
                       "--size", "32x32", "--no-figure", "-q")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert rc == 0, text
    assert [checks[i]["status"] for i in (1, 2, 3, 4)] == ["PASS"] * 4
    assert "training needs two videos per batch" in report["config"]["paths_not_run"]["train"]
    assert "train: not run" in checks[2]["message"]
    assert any("the train path was not compared" in w for w in checks[3]["figures"]["weak_evidence"])
    assert "train" not in checks[3]["figures"]["sections"]
