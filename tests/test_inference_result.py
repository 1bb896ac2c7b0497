"""Device inference returns everything it decided; nothing reaches the engine by another way."""

from __future__ import annotations

import ast

from flake8_device import context, inference
from flake8_device.engine import Checker
from flake8_device.inference import DeviceChoice, Refusal
from flake8_device.lines import split_lines
from flake8_device.options import Options


def _choice_at(src: str, options: Options = Options(), **kw):
    """The choice inference makes for the first ``.cuda()`` call of ``src``, as a rule would ask for it."""
    tree = ast.parse(src)
    ck = Checker(tree, split_lines(src), options)
    got = []
    original = ck.infer_device

    def spy(at, *a, **k):
        out = original(at, *a, **k)
        got.append(out)
        return out

    ck.infer_device = spy
    diags = ck.run()
    return got, diags


PROPERTY = """import torch
from torch import nn


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return x.cuda()
"""

MODULE = """import torch


def f(x):
    return x.cuda()
"""


def test_a_property_choice_carries_its_group():
    got, diags = _choice_at(PROPERTY)
    choice = got[0]
    assert isinstance(choice, DeviceChoice) and choice.add_property_to is not None
    assert choice.group == "device property of M (line 5)"
    assert diags[0].fix.group == choice.group


def test_a_module_device_choice_names_the_definition_it_needs():
    got, diags = _choice_at(MODULE)
    choice = got[0]
    assert choice.defines == "DEVICE" and not choice.safe
    assert diags[0].fix.group == inference.MODULE_DEVICE_GROUP
    assert diags[0].fix.ops[0].text.startswith("DEVICE = torch.device(")


def test_a_refused_device_expr_is_returned_and_drops_the_fix():
    got, diags = _choice_at(MODULE, Options(device_expr="self.device"))
    assert isinstance(got[0], Refusal) and not got[0]
    assert diags[0].fix is None and diags[0].no_fix_reason.startswith("DEV002: ") \
        and got[0].why in diags[0].no_fix_reason


def test_choices_have_no_dead_fields_and_the_context_no_side_channel():
    fields = set(DeviceChoice.__dataclass_fields__)
    assert not fields & {"root", "new_module_device"}
    members = set(vars(context.RuleContext)) | set(context.RuleContext.__annotations__)
    side = {"refuse_device_expr", "take_device_expr_refusal", "note_new_device", "take_new_device",
            "note_group", "take_group", "claimed_module_device", "claim_module_device", "handled", "rule_state"}
    assert not members & side


def test_the_importer_spells_torch_as_the_module_does():
    src = "import torch as T\n\ndef f(x):\n    return x.cuda()\n"
    diags = Checker(ast.parse(src), split_lines(src), Options()).run()
    texts = [op.text for op in diags[0].fix.ops]
    assert any("T.device(" in t for t in texts) and not any("torch." in t for t in texts)
