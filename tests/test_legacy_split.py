"""DEV103 is a legacy constructor whose value goes to a device; DEV104 (default off) one that stays on the CPU."""

from __future__ import annotations

import io
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device.cli import main
from flake8_device.engine import check_source

CTORS = ["Tensor", "FloatTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor"]

# (statement using v = <legacy>, goes to a device?)
USES = [
    ("return v.to(device)", True),
    ("return v.cuda()", True),
    ("return x[v.to(x.device)]", True),
    ("return v * x.cuda()", True),
    ("return torch.cat([v, x.to(device)])", True),
    ("return to_device(v, x.device)", True),
    ("return v", False),
    ("return v.cpu()", False),
    ("return v.numpy()", False),
    ("return v.to(torch.int64)", False),
    ("return v.tolist(), x.shape", False),
    ("return x[v]", False),
]


def codes(src: str):
    return [d.code for d in check_source(textwrap.dedent(src)) if d.code in ("DEV103", "DEV104")]


@settings(max_examples=60, deadline=None)
@given(ctor=st.sampled_from(CTORS), use=st.sampled_from(USES), inline=st.booleans())
def test_code_follows_where_the_value_goes(ctor, use, inline):
    stmt, to_device = use
    expected = ["DEV103" if to_device else "DEV104"]
    if inline and stmt.startswith("return v"):  # the constructor in place of the name
        body = f"    {stmt.replace('v', f'torch.{ctor}(ids)', 1)}\n"
        if ".numpy()" in stmt or ".tolist()" in stmt:
            expected = []  # consumed on the host at once: no rule looks at it (as before)
    else:
        body = f"    v = torch.{ctor}(ids)\n    {stmt}\n"
    src = "import torch\n\n\ndef f(ids, x, device):\n" + body
    assert codes(src) == expected, src


def test_module_parameter_outside_init_is_on_the_device():
    src = """
    import torch


    class M(torch.nn.Module):
        def __init__(self, mean):
            super().__init__()
            self.register_buffer("scale", torch.Tensor(mean))

        def forward(self, ids):
            return torch.FloatTensor(ids) * self.scale
    """
    assert codes(src) == ["DEV104", "DEV103"]


def test_following_the_cpu_tensor_itself_is_not_a_device():
    """``frame = torch.range(...).to(indices)`` follows the CPU tensor: no evidence of a device."""
    src = """
    import torch


    def reorder(output, indices):
        indices = torch.Tensor(indices).to(torch.int64)
        frame = torch.range(0, indices.shape[0] - 1).to(indices).unsqueeze(1)
        return output[indices, frame]
    """
    assert codes(src) == ["DEV104"]


def test_dev104_is_off_unless_named(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\n\n\ndef f(b):\n    return torch.LongTensor([len(x) for x in b])\n")
    out = io.StringIO()
    main(["--isolated", "--select", "DEV", str(f)], stdout=out, stderr=io.StringIO())
    assert "DEV104" not in out.getvalue()
    out = io.StringIO()
    main(["--isolated", "--extend-select", "DEV104", str(f)], stdout=out, stderr=io.StringIO())
    assert "DEV104" in out.getvalue()
