"""detectron2 structures and the bundled DVIS-DAQ-style model under the virtual device."""

import importlib
import os
import shutil
import sys

import pytest
import torch

detectron2 = pytest.importorskip("detectron2")
from detectron2.structures import BitMasks, Boxes, ImageList, Instances  # noqa: E402

from flake8_device.virtual import virtual_device  # noqa: E402

CUDA0 = torch.device("cuda", 0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_imagelist_instances_bitmasks():
    imgs = [torch.rand(3, 5, 7), torch.rand(3, 6, 4)]
    with virtual_device("cuda") as vd:
        il = ImageList.from_tensors([i.to("cuda") for i in imgs], size_divisibility=4)
        assert il.tensor.device == CUDA0 and il.device == CUDA0
        inst = Instances((6, 7))
        inst.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
        inst.gt_masks = BitMasks(torch.zeros(1, 6, 7, dtype=torch.bool))
        inst.gt_classes = torch.tensor([2])
        moved = inst.to("cuda")
        assert moved.gt_boxes.tensor.device == CUDA0
        assert moved.gt_masks.tensor.device == CUDA0 and moved.gt_masks.device == CUDA0
        assert moved.gt_classes.device == CUDA0
        assert inst.gt_classes.device.type == "cpu"
        bm = BitMasks(torch.ones(2, 3, 3, dtype=torch.bool)).to(torch.device("cuda"))
        assert bm.tensor.device == CUDA0
        area = moved.gt_boxes.area() + torch.tensor(1.0)  # 0-dim host scalar: allowed
        assert area.device == CUDA0
    assert vd.mismatches == []


def test_instances_meeting_host_tensor_reported():
    with virtual_device("cuda", mode="report") as vd:
        inst = Instances((4, 4))
        inst.gt_classes = torch.tensor([1, 2])
        inst = inst.to("cuda")
        inst.gt_classes + torch.tensor([1, 1])
    assert len(vd.mismatches) == 1 and vd.mismatches[0].devices == ("cuda:0", "cpu")


def _host_copy(tmp_path):
    """The corpus model with every "cuda" literal replaced by "cpu" (the plain CPU program)."""
    src = os.path.join(ROOT, "corpus", "dvis_daq")
    dst = tmp_path / "dvis_daq_hostcopy"
    shutil.copytree(src, dst)
    for name in os.listdir(dst):
        if name.endswith(".py"):
            p = dst / name
            p.write_text(p.read_text().replace('"cuda"', '"cpu"'))
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("dvis_daq_hostcopy.api")
    finally:
        sys.path.remove(str(tmp_path))


def _run(api, virtual, train):
    model = api.build(train=train)
    inputs = api.make_inputs(with_targets=train)
    frames = api.input_frames(inputs)
    for f in frames:
        f.requires_grad_(True)
    if virtual:
        with virtual_device("cuda", mode="report") as vd:
            model.to("cuda")
            out = model(inputs)
            api.scalar_objective(out).backward()
        assert vd.mismatches == [], vd.format_summary()
    else:
        out = model(inputs)
        api.scalar_objective(out).backward()
    grads = [f.grad for f in frames] + [p.grad for p in model.parameters()]
    return out, grads


def _flatten(out):
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    flat = []
    for r in out:
        for k in sorted(r):
            v = r[k]
            flat.extend(v if isinstance(v, list) else [v])
    return flat


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
def test_corpus_model_bitwise_equal_to_cpu_literal_copy(tmp_path, train):
    pytest.importorskip("corpus.dvis_daq.api")
    from corpus.dvis_daq import api

    out_v, grads_v = _run(api, True, train)
    out_c, grads_c = _run(_host_copy(tmp_path), False, train)
    flat_v, flat_c = _flatten(out_v), _flatten(out_c)
    assert len(flat_v) == len(flat_c) > 0
    for a, b in zip(flat_v, flat_c):
        if isinstance(a, torch.Tensor):
            assert a.device.type == "cpu"
            assert torch.equal(a, b)
        else:
            assert a == b
    for a, b in zip(grads_v, grads_c):
        assert (a is None and b is None) or torch.equal(a, b)
