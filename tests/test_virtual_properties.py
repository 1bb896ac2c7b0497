"""Property tests: random operand placements against the written rules (R1-R3)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device.virtual import virtual_device

OPS = {
    "add": lambda a, b: a + b,
    "mul_": lambda a, b: a.clone().mul_(b) if a.dim() >= b.dim() else b.clone().mul_(a),
    "maximum": torch.maximum,
    "lt": lambda a, b: a < b,
    "where": lambda a, b: torch.where(a > 1, a, b),
    "cat": lambda a, b: torch.cat([a.reshape(-1), b.reshape(-1)]) if a.dim() and b.dim() else a + b,
}

operand = st.tuples(st.sampled_from(["cpu", "cuda"]), st.sampled_from([0, 1]),
                    st.integers(min_value=-3, max_value=3))


def _make(spec, dev):
    where, rank, val = spec
    t = torch.tensor(float(val)) if rank == 0 else torch.arange(4, dtype=torch.float32) + val
    return t.to(dev if where == "cuda" else "cpu")


def _expected_error(op, a, b):
    if op == "cat" and a[1] and b[1]:
        return a[0] != b[0]
    devs = {s[0] for s in (a, b) if not (s[0] == "cpu" and s[1] == 0)}
    return len(devs) > 1


@settings(max_examples=80, deadline=None)
@given(op=st.sampled_from(sorted(OPS)), a=operand, b=operand)
def test_random_placements_follow_rules(op, a, b):
    fn = OPS[op]
    with virtual_device("cuda", mode="report") as vd:
        got = fn(_make(a, "cuda"), _make(b, "cuda"))
        got_dev = got.device
    want = fn(_make(a, "cpu"), _make(b, "cpu"))
    assert bool(vd.mismatches) == _expected_error(op, a, b)
    assert torch.equal(got, want)
    on_accel = "cuda" in (a[0], b[0])
    assert got_dev.type == ("cuda" if on_accel else "cpu")


@pytest.mark.parametrize("mode", ["strict", "report"])
@settings(max_examples=30, deadline=None)
@given(a=operand, b=operand)
def test_strict_raises_exactly_when_report_records(mode, a, b):
    fn = OPS["add"]
    raised = False
    with virtual_device("cuda", mode=mode) as vd:
        try:
            fn(_make(a, "cuda"), _make(b, "cuda"))
        except RuntimeError:
            raised = True
    expected = _expected_error("add", a, b)
    if mode == "strict":
        assert raised == expected
    else:
        assert not raised and bool(vd.mismatches) == expected
