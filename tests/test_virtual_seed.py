"""The hardcoded snippets of the DVIS-DAQ analysis run unchanged under the
virtual device and give the values of the same code with "cpu" literals."""

import types

import pytest
import torch

from flake8_device.virtual import virtual_device

# Verbatim from the seed analysis (track_module.py / meta_architecture.py), each
# wrapped just enough to run: `self`, sizes and inputs come from the namespace.
SNIPPETS = {
    "empty_hidden": 'out = torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")',
    "empty_ids": 'out = torch.empty(size=(0, ), dtype=torch.int64).to("cuda")',
    "disappear_mask": 'disappear_fq_mask = torch.zeros(size=(fQ, ), dtype=torch.bool).to("cuda")\n'
                      "out = disappear_fq_mask",
    "full_fill": 'out = torch.full(size=(ms_outputs.shape[1], ),\n'
                 '                 fill_value=-1).to("cuda")',
    "activated_bool": 'activated_queries_bool = torch.ones(size=(ms_outputs.shape[1], )).to("cuda") < 0\n'
                      "out = activated_queries_bool",
    "seg_mask": 'seg_mask = (mask[:, start:end, :, :].sigmoid() > 0.5).to("cuda")\nout = seg_mask',
    "full_logits": 'full_logits = torch.ones(num_frames, self.sem_seg_head.num_classes + 1)'
                   '.to(torch.float32).to("cuda") * -1e4\nout = full_logits',
    "padding_masks": 'padding_masks = torch.zeros(size=(1, 0, T), dtype=torch.bool).to("cuda")\n'
                     'seq_id_tensor = torch.IntTensor([]).to("cuda")\nout = (padding_masks, seq_id_tensor)',
    "seq_ids": 'seq_id_tensor = torch.IntTensor(seq_id_list).to("cuda")\nout = seq_id_tensor',
    "topk_indices": 'topk_indices = torch.arange(scores.shape[0]).to("cuda")\nout = topk_indices',
    "naive_padding": 'naive_padding_masks = torch.ones(size=(num_left, num_frames)).to("cuda") < 0\n'
                     "out = naive_padding_masks",
    # the snippets combined with device-following code, as in the model
    "combined": 'topk_indices = torch.arange(scores.shape[0]).to("cuda")\n'
                'full_logits = torch.ones(num_frames, self.sem_seg_head.num_classes + 1)'
                '.to(torch.float32).to("cuda") * -1e4\n'
                "full_logits[topk_indices % num_frames] = scores.to(full_logits.device)[:, :full_logits.shape[1]]\n"
                "out = full_logits.softmax(-1)",
}


def _namespace():
    g = torch.Generator().manual_seed(0)
    self = types.SimpleNamespace(hidden_dim=8, sem_seg_head=types.SimpleNamespace(num_classes=4))
    return {
        "torch": torch, "self": self, "fQ": 5, "T": 3, "num_frames": 4, "num_left": 2,
        "ms_outputs": torch.zeros(2, 7), "mask": torch.randn(2, 6, 4, 4, generator=g),
        "start": 1, "end": 4, "seq_id_list": [3, 1, 2],
        "scores": torch.randn(4, 5, generator=g),
    }


def _run(src):
    ns = _namespace()
    exec(compile(src, "<seed-snippet>", "exec"), ns)
    return ns["out"]


def _flat(x):
    return list(x) if isinstance(x, tuple) else [x]


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_matches_cpu_literal_run(name):
    src = SNIPPETS[name]
    assert '"cuda"' in src
    with virtual_device("cuda", mode="strict") as vd:
        got = _run(src)
        devices = [t.device for t in _flat(got)]
    want = _run(src.replace('"cuda"', '"cpu"'))
    assert vd.mismatches == []
    assert all(d == torch.device("cuda", 0) for d in devices)
    for g, w in zip(_flat(got), _flat(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert torch.equal(g, w)
        assert g.device.type == "cpu"  # ordinary CPU tensors after the context


def test_snippet_meeting_host_tensor_is_reported():
    src = ('topk_indices = torch.arange(scores.shape[0]).to("cuda")\n'
           "out = topk_indices + torch.arange(scores.shape[0])\n")
    with virtual_device("cuda", mode="report") as vd:
        _run(src)
    (rec,) = vd.mismatches
    assert rec.file == "<seed-snippet>" and rec.line == 2
