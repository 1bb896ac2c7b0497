"""Each check of the harness on its own, over hand-made results (no model runs).

The checks are pure functions of the captured results (flake8_device/harness/checks.py);
package mode, detectron2 project mode and entry mode all feed them. Every compared
section must count: one element changed anywhere must fail check 3 (original vs
fixed) and check 4 (fixed under the virtual accelerator vs fixed on the CPU), a
change beyond the tolerance must fail check 5, and a non-finite value in what
check 2 reads must fail it.
"""
import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from flake8_device.harness import checks  # noqa: E402
from flake8_device.harness.runner import FAIL, PASS, SKIP, CheckResult, RunResult, as_result  # noqa: E402
from flake8_device.harness.tensors import all_finite, compare  # noqa: E402

DEVICE_ERR = {"type": "RuntimeError", "text": "RuntimeError: Found no NVIDIA driver on your system",
              "where": "pkg/model.py:3: x.cuda()"}


def _good():
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.rand(*shape, generator=g) + 0.1

    sections = {
        "state": [("w", torch.arange(32, dtype=torch.uint8))],
        "inputs": [("in", r(2, 3))],
        "train": [("loss", r(())), ("objective", r(()))],
        "train_grads": [("w", r(3)), ("b", r(1))],
        "train_input_grads": [("d/dframe[0]", r(3, 4, 4))],
        "infer": [("out['scores']", r(5)), ("out['labels']", torch.tensor([1, 2, 0]))],
        "captured": [("head#0", r(4))],
        "saliency": [("d/dframe[0]", r(3, 4, 4))],
    }
    assert set(sections) == set(checks.COMPARED)
    facts = {"train_objective": 1.0, "losses": 1, "params_without_grad": 0, "captured_from": ["head"]}
    return {"sections": sections, "errors": {}, "facts": facts, "model": {},
            "mismatches": {"build": [], "train": [], "infer": []}, "seconds": {"total": 1.0}}


def _results(gpu=False):
    roles = ["orig_cpu", "fixed_cpu", "orig_virt", "fixed_virt"] + (["orig_gpu", "fixed_gpu"] if gpu else [])
    res = {role: _good() for role in roles}
    res["orig_cpu"]["errors"] = {"train": dict(DEVICE_ERR), "infer": dict(DEVICE_ERR)}
    res["orig_cpu"]["sections"] = {}
    return res


def _perturb(result, section, index, amount=None):
    """One element of one tensor of ``section`` changed: the next float (or +1 for integers)."""
    name, t = result["sections"][section][index % len(result["sections"][section])]
    t = t.clone()
    flat = t.view(-1)
    i = index % flat.numel()
    if t.is_floating_point():
        flat[i] = flat[i] + amount if amount is not None else torch.nextafter(flat[i], torch.tensor(1e9))
    else:
        flat[i] = flat[i] + 1
    items = list(result["sections"][section])
    items[index % len(items)] = (name, t)
    result["sections"][section] = items
    return name


def _judge(results, gpu=False):
    return checks.judge(results, gpu=gpu, rtol=1e-4, atol=1e-5)[0]


def test_equal_results_pass_every_check():
    c = _judge(_results())
    assert [c[i].status for i in (1, 2, 3, 4, 5)] == [PASS, PASS, PASS, PASS, SKIP]
    assert c[3].figures["compared_tensors"] == sum(len(v) for v in _good()["sections"].values())
    assert "no GPU" in c[5].message


@settings(max_examples=40, deadline=None)
@given(section=st.sampled_from(checks.COMPARED), index=st.integers(0, 200))
def test_check3_fails_on_one_changed_element_of_any_section(section, index):
    res = _results()
    name = _perturb(res["fixed_cpu"], section, index)
    c = _judge(res)
    assert c[3].status == FAIL and f"{section}: {name}" in c[3].message
    # the fixed copy under the virtual accelerator now differs from the fixed CPU run too
    assert c[4].status == FAIL and section in c[4].message


@settings(max_examples=20, deadline=None)
@given(section=st.sampled_from(checks.COMPARED), index=st.integers(0, 200))
def test_check4_fails_when_the_virtual_run_of_the_fixed_copy_differs(section, index):
    res = _results()
    _perturb(res["fixed_virt"], section, index)
    c = _judge(res)
    assert c[3].status == PASS and c[4].status == FAIL and "differs from the fixed CPU run" in c[4].message


@pytest.mark.parametrize("section", ["train_input_grads", "saliency"])
def test_check3_does_not_ignore_input_gradients(section):
    """A check 3 that skipped the input gradients once passed every test: pinned here."""
    ref, fx = _good(), _good()
    _perturb(fx, section, 0)
    check = CheckResult(3, "x")
    checks._check3(check, ref, fx, compare)
    assert check.status == FAIL and section in check.message
    assert check.figures["sections"][section]["problem_count"] == 1


def test_package_mode_input_gradients_reach_check3():
    """Package mode's runs become results whose input gradients check 3 compares."""
    def run(grad_value):
        r = RunResult(outputs=[("out", torch.ones(2))], grads=[("grad[0]", torch.full((2, 2), grad_value))],
                      param_grads=[("w", torch.ones(1))], objective=1.0)
        return {"train": r, "infer": copy.deepcopy(r)}

    res = {"orig_cpu": as_result({p: RunResult(error=RuntimeError("x"), error_text=DEVICE_ERR["text"],
                                                error_where="m.py:1") for p in ("train", "infer")}),
           "fixed_cpu": as_result(run(1.0)), "orig_virt": as_result(run(1.0 + 2 ** -20)),
           "fixed_virt": as_result(run(1.0))}
    assert res["fixed_cpu"]["sections"]["train_input_grads"] and res["fixed_cpu"]["sections"]["saliency"]
    c = _judge(res)
    assert c[3].status == FAIL and "train_input_grads: grad[0]" in c[3].message and "saliency" in c[3].message
    assert c[4].status == PASS


def test_check4_fails_on_a_device_mismatch_and_names_the_place():
    res = _results()
    res["fixed_virt"]["mismatches"]["infer"] = [
        {"file": "pkg/head.py", "line": 12, "op": "Tensor.__add__", "devices": ["cuda:0", "cpu"], "count": 2,
         "kind": "mix", "message": "Expected all tensors to be on the same device"}]
    c = _judge(res)
    assert c[4].status == FAIL and "pkg/head.py:12" in c[4].message and c[4].figures["mismatches"] == 2
    assert c[3].status == PASS


@pytest.mark.parametrize("section", ["train", "train_grads", "train_input_grads", "infer", "saliency"])
def test_check2_fails_on_a_non_finite_value(section):
    r = _good()
    items = list(r["sections"][section])
    name, t = items[0]
    t = t.clone()
    t.view(-1)[0] = float("nan")
    items[0] = (name, t)
    r["sections"][section] = items
    check = CheckResult(2, "x")
    checks._check2(check, r, all_finite)
    assert check.status == FAIL and name in check.message


def test_check2_fails_without_any_non_zero_parameter_gradient_or_saliency():
    r = _good()
    r["sections"]["train_grads"] = [(n, torch.zeros_like(t)) for n, t in r["sections"]["train_grads"]]
    check = CheckResult(2, "x")
    checks._check2(check, r, all_finite)
    assert check.status == FAIL and "no non-zero parameter gradient" in check.message
    r = _good()
    r["sections"]["saliency"] = [(n, torch.zeros_like(t)) for n, t in r["sections"]["saliency"]]
    check = CheckResult(2, "x")
    checks._check2(check, r, all_finite)
    assert check.status == FAIL and "zero on every frame" in check.message


def test_check1_pass_skip_fail():
    res = _results()
    check = CheckResult(1, "x")
    checks._check1(check, res["orig_cpu"], res["orig_virt"])
    assert check.status == PASS and "NVIDIA driver" in check.message
    check = CheckResult(1, "x")
    checks._check1(check, _good(), _good())
    assert check.status == SKIP and "already runs on the CPU" in check.message
    other = _good()
    other["errors"] = {"train": {"type": "ValueError", "text": "ValueError: bad shape", "where": "m.py:1: f()"}}
    ref = _good()
    ref["errors"] = copy.deepcopy(other["errors"])  # the same error without the device: not the device's
    check = CheckResult(1, "x")
    checks._check1(check, other, ref)
    assert check.status == FAIL and "not with a device error" in check.message


@pytest.mark.parametrize("amount, status", [(None, PASS), (1e-3, FAIL)])
def test_check5_judges_within_the_tolerance(amount, status):
    res = _results(gpu=True)
    _perturb(res["fixed_gpu"], "train_grads", 0, amount)
    c = _judge(res, gpu=True)
    assert c[5].status == status, c[5].message
    if status == FAIL:
        assert "original GPU vs fixed GPU: train_grads" in c[5].message


def test_both_copies_failing_alike_judges_nothing():
    res = _results()
    err = {"type": "ModuleNotFoundError", "text": "ModuleNotFoundError: No module named 'scipy'",
           "where": "pkg/m.py:1: import scipy", "hint": "pip install scipy"}
    for role in ("orig_virt", "fixed_cpu"):
        res[role]["errors"] = {"setup": dict(err)}
    c, problem = checks.judge(res, gpu=False, rtol=1e-4, atol=1e-5)
    assert problem and "says nothing about the fix" in problem
    assert [c[i].status for i in (1, 2, 3, 4)] == [SKIP] * 4


def test_where_names_the_innermost_frame_inside_the_roots(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("def f():\n    raise RuntimeError('x')\n")
    ns = {}
    exec(compile((pkg / "m.py").read_text(), str(pkg / "m.py"), "exec"), ns)
    try:
        ns["f"]()
    except RuntimeError as exc:
        assert checks.where(exc, [str(pkg)]) == "m.py:2: raise RuntimeError('x')"
        assert checks.where(exc, [str(pkg)], str(tmp_path)) == "pkg/m.py:2: raise RuntimeError('x')"
        assert checks.where(exc, [str(tmp_path / "elsewhere")]).endswith("m.py:2: raise RuntimeError('x')")


def test_check4_does_not_blame_the_virtual_run_for_a_failed_cpu_run():
    res = _results()
    res["fixed_cpu"]["errors"] = {"train": dict(DEVICE_ERR)}
    res["fixed_cpu"]["sections"]["train"] = []
    c = _judge(res)
    assert c[2].status == FAIL
    assert c[4].status == PASS and "different structure" not in c[4].message
    assert "not compared with the fixed CPU run, which failed (check 2)" in c[4].message


def test_no_function_of_the_harness_is_over_100_lines():
    import ast
    import pathlib

    long = []
    for path in sorted((pathlib.Path(checks.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_one_where_for_every_mode():
    """Package mode and the project workers name an error's place with the same function."""
    import inspect

    from flake8_device.harness import d2, runner

    assert runner.where is checks.where
    for mod in (d2, runner):
        src = inspect.getsource(mod._where)
        assert "return where(exc" in src and "extract_tb" not in src
