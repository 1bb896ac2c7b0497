"""Fixture tests: every rule's flagged and not-flagged cases, through the engine and through flake8."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from flake8_device.engine import check_source
from flake8_device.options import Options
from flake8_device.rules import CODES, DEFAULT_IGNORED

ROOT = pathlib.Path(__file__).resolve().parents[1]
RULES = ROOT / "corpus" / "rules"
SEED = ROOT / "corpus" / "seed" / "dvis_daq_seed.py"


def _render(path: pathlib.Path, only: str | None) -> list[str]:
    out = []
    for d in check_source(path.read_text(), str(path)):
        if only is None or d.code == only:
            out.append(f"{d.span.line}:{d.span.col + 1}: {d.code} {d.message}")
    return out


def _expected(path: pathlib.Path) -> list[str]:
    return [l for l in path.with_suffix(".txt").read_text().splitlines() if l.strip()]


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_fixture(code):
    assert (RULES / f"{code}.py").exists() and (RULES / f"{code}.txt").exists()


@pytest.mark.parametrize("path", sorted(RULES.glob("DEV*.py")), ids=lambda p: p.stem)
def test_rule_fixture(path):
    expected = _expected(path)
    assert expected, "a fixture must flag something"
    assert _render(path, path.stem) == expected


@pytest.mark.parametrize("path", sorted(RULES.glob("DEV*.py")), ids=lambda p: p.stem)
def test_not_flagged_functions_are_clean(path):
    """Nothing inside a ``not_flagged`` function is reported under the fixture's code."""
    tree = ast.parse(path.read_text())
    ranges = [
        (n.lineno, n.end_lineno)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name.startswith("not_flagged")
    ]
    diags = [d for d in check_source(path.read_text()) if d.code == path.stem]
    lines = path.read_text().splitlines()
    for d in diags:
        inside = any(a <= d.span.line <= b for a, b in ranges)
        assert not inside or "noqa" in lines[d.span.line - 1], d


def test_seed_file_reports_every_listed_line():
    expected = _expected(SEED)
    assert _render(SEED, None) == expected
    # the thirteen hardcoded lines of the analysis, by their text
    text = SEED.read_text().splitlines()
    flagged = {int(l.split(":")[0]) for l in expected}
    needles = [
        'torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")',
        'torch.empty(size=(0, ), dtype=torch.int64).to("cuda")',
        'torch.zeros(size=(fQ, ), dtype=torch.bool).to("cuda")',
        'fill_value=-1).to("cuda")',
        'torch.ones(size=(ms_outputs.shape[1], )).to("cuda") < 0',
        '(mask[:, start:end, :, :].sigmoid() > 0.5).to("cuda")',
        '.to(torch.float32).to("cuda") * -1e4',
        'torch.zeros(size=(1, 0, T), dtype=torch.bool).to("cuda")',
        'torch.IntTensor([]).to("cuda")',
        'torch.IntTensor(seq_id_list).to("cuda")',
        'torch.arange(scores.shape[0]).to("cuda")',
        'torch.ones(size=(num_left, num_frames)).to("cuda") < 0',
    ]
    # one code per concern: every hardcoded line also carries a portability (DEV0xx) code
    portability = {int(l.split(":")[0]) for l in expected if l.split()[1].startswith("DEV0")}
    for needle in needles:
        hits = [i + 1 for i, l in enumerate(text) if needle in l]
        assert hits, needle
        for h in hits:
            # multi-line calls are reported on the line where the expression starts
            assert h in flagged or h - 1 in flagged, (needle, h)
            assert h in portability or h - 1 in portability, (needle, h)


def _flake8(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flake8", *args], cwd=cwd, capture_output=True, text=True)


def test_flake8_plugin_matches_engine_and_honours_noqa():
    res = _flake8("--select", "DEV", "--extend-ignore", "DEV102", *[str(p) for p in sorted(RULES.glob("DEV*.py"))])
    assert res.returncode == 1, res.stderr
    got = set(res.stdout.splitlines())
    for path in sorted(RULES.glob("DEV*.py")):
        lines = path.read_text().splitlines()
        for d in check_source(path.read_text()):
            if d.code in DEFAULT_IGNORED:  # off in flake8 unless named in full
                continue
            row = f"{path}:{d.span.line}:{d.span.col + 1}: {d.code} {d.message}"
            if "noqa" in lines[d.span.line - 1]:
                assert row not in got
            else:
                assert row in got


def test_one_code_per_concern_survives_ignoring_the_efficiency_and_style_codes(tmp_path):
    """``torch.zeros(n).to("cuda")``, ``torch.IntTensor(ids).to("cuda")``, ``torch.rand(3).cuda()`` fail on a
    CPU-only machine: with DEV101 and DEV103 switched off they are still reported, as DEV001/DEV002."""
    f = tmp_path / "m.py"
    f.write_text(
        "import torch\n\n\ndef f(n, ids):\n"
        "    a = torch.zeros(n).to('cuda')\n"
        "    b = torch.IntTensor(ids).to('cuda')\n"
        "    c = torch.rand(3).cuda()\n"
        "    d = torch.ones(n).to(torch.float32).to(device='cuda:1')\n"
        "    if torch.cuda.is_available():\n"
        "        e = torch.zeros(n).to('cuda')\n"
        "    return a, b, c, d, e\n"
    )
    res = _flake8("--isolated", "--select", "DEV", "--extend-ignore", "DEV101,DEV103", str(f), cwd=tmp_path)
    rows = [line.split(":", 3) for line in res.stdout.splitlines()]
    assert sorted((int(r[1]), r[3].split()[0]) for r in rows) == [
        (5, "DEV001"), (6, "DEV001"), (7, "DEV002"), (8, "DEV001")]
    by_line = {}
    for d in check_source(f.read_text()):
        by_line.setdefault(d.span.line, []).append(d)
    for line in (5, 6, 7, 8):
        chain, portability = sorted(by_line[line], key=lambda d: d.code.startswith("DEV0"))
        assert chain.code in ("DEV101", "DEV103") and portability.code in ("DEV001", "DEV002")
        assert portability.fix is chain.fix and chain.fix is not None
    seed = _flake8("--isolated", "--select", "DEV", "--extend-ignore", "DEV101,DEV103", str(SEED))
    reported = {int(l.split(":")[1]) for l in seed.stdout.splitlines()}
    for d in check_source(SEED.read_text()):  # each diagnostic's expression has a line still reported
        assert reported & set(range(d.span.line, d.span.end_line + 1)), d


def test_flake8_version_lists_plugin():
    res = _flake8("--version")
    assert "flake8-device" in res.stdout


def test_dev102_is_default_ignored_but_selectable(tmp_path):
    f = tmp_path / "m.py"
    f.write_text((RULES / "DEV102.py").read_text())
    default = _flake8("--isolated", str(f), cwd=tmp_path)
    assert "DEV102" not in default.stdout
    selected = _flake8("--isolated", "--select", "DEV102", str(f), cwd=tmp_path)
    assert "DEV102" in selected.stdout


@pytest.mark.parametrize("front", ["flake8", "flake8-device"])
def test_dev102_is_reported_only_when_named_in_full(tmp_path, front):
    """``--select DEV`` and ``extend-select = DEV`` keep DEV102 off; only ``DEV102`` itself turns it on."""
    f = tmp_path / "m.py"
    f.write_text((RULES / "DEV102.py").read_text())

    def run(*args):
        if front == "flake8":
            return _flake8(*args, "m.py", cwd=tmp_path).stdout
        return subprocess.run([sys.executable, "-m", "flake8_device.cli", *args, "m.py"], cwd=tmp_path,
                              capture_output=True, text=True).stdout

    for off in (["--isolated", "--select", "DEV"], ["--isolated", "--select", "DEV1"],
                ["--isolated", "--extend-select", "DEV"], ["--isolated", "--select", "DEV10"]):
        out = run(*off)
        assert "DEV102" not in out, off
    for on in (["--isolated", "--select", "DEV102"], ["--isolated", "--select", "DEV", "--extend-select", "DEV102"],
               ["--isolated", "--extend-select", "DEV102"]):
        assert "DEV102" in run(*on), on
    (tmp_path / "setup.cfg").write_text("[flake8]\nextend-select = DEV\n")
    assert "DEV102" not in run()
    (tmp_path / "setup.cfg").write_text("[flake8]\nextend-select = DEV,DEV102\n")
    assert "DEV102" in run()


def test_flake8_syntax_error_is_e999_and_plugin_does_not_crash(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def f(:\n    x.to('cuda')\n")
    res = _flake8("--isolated", "--select", "DEV,E999", str(f), cwd=tmp_path)
    assert "E999" in res.stdout
    assert "Traceback" not in res.stderr


def test_flake8_per_file_ignores_and_config(tmp_path):
    (tmp_path / "a.py").write_text("import torch\nx = torch.ones(2).to('cuda')\n")
    (tmp_path / "b.py").write_text("import torch\ny = torch.ones(2).to('cuda')\n")
    (tmp_path / "setup.cfg").write_text("[flake8]\nselect = DEV\nper-file-ignores =\n    b.py: DEV101,DEV001\n")
    res = _flake8("a.py", "b.py", cwd=tmp_path)
    assert "a.py:2:5: DEV101" in res.stdout
    assert "b.py" not in res.stdout


def test_device_expr_option_reaches_fixes(tmp_path):
    src = "import torch\nDEV = torch.device('cpu')\nx = torch.ones(2).to('cuda')\n"
    d, companion = check_source(src, options=Options(device_expr="DEV"))
    assert (d.code, companion.code) == ("DEV101", "DEV001") and companion.fix is d.fix
    assert d.fix is not None and "DEV" in d.fix.ops[-1].keywords[-1][1]


def test_extra_flagged_devices_and_custom_accelerators():
    src = "import torch\ndef f(x):\n    return x.to('cpu'), x.to('tpu')\n"
    assert check_source(src) == []
    codes = [d.message for d in check_source(src, options=Options(extra_flagged=frozenset({"cpu"})))]
    assert len(codes) == 1 and "'cpu'" in codes[0]
    custom = check_source(src, options=Options(accelerators=frozenset({"tpu"})))
    assert len(custom) == 1 and "'tpu'" in custom[0].message


def test_aliased_imports():
    src = (
        "import torch as T\nfrom torch import zeros, device as D\n"
        "a = zeros(3).to('cuda')\nb = T.ones(2).cuda()\nc = D('cuda')\n"
    )
    assert [d.code for d in check_source(src)] == ["DEV101", "DEV001", "DEV002", "DEV101", "DEV003"]


@pytest.mark.parametrize("path", [*sorted(RULES.glob("DEV*.py")), SEED], ids=lambda p: p.stem)
def test_report_only_mode_finds_the_same(path):
    """The flake8 plugin skips fix building; it must report exactly what the fixer sees."""
    src = path.read_text()
    full = [(d.code, d.span, d.message) for d in check_source(src)]
    lean = check_source(src, fixes=False)
    assert [(d.code, d.span, d.message) for d in lean] == full
    assert all(d.fix is None for d in lean)


def test_renamed_imports_are_followed():
    src = (
        "from torch import zeros as Z, IntTensor as IT\nfrom torch.cuda.amp import autocast as ac\n"
        "def f(x):\n    a = Z(3).to('cuda')\n    b = IT([1]).cuda()\n    with ac():\n        pass\n"
        "    import torch as tt\n    return tt.arange(2).to('cuda')\n"
    )
    assert [d.code for d in check_source(src)] == ["DEV005", "DEV101", "DEV001", "DEV002", "DEV103", "DEV005",
                                                   "DEV101", "DEV001"]


def test_flake8_device_accelerators_option(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\n\ndef f(x):\n    return x.to('cpu'), x.to('cuda')\n")
    default = _flake8("--isolated", "--select", "DEV", str(f), cwd=tmp_path)
    assert default.stdout.count("DEV001") == 1
    with_cpu = _flake8("--isolated", "--select", "DEV", "--device-accelerators=cuda,cpu", str(f), cwd=tmp_path)
    assert with_cpu.stdout.count("DEV001") == 2 and "'cpu'" in with_cpu.stdout
    only_mps = _flake8("--isolated", "--select", "DEV", "--device-accelerators=mps", str(f), cwd=tmp_path)
    assert "DEV001" not in only_mps.stdout


def _fix_of(src: str, line: int):
    """The diagnostic of ``line``; a chain's DEV101/DEV103 and its DEV001/DEV002 share one fix."""
    found = [d for d in check_source(src) if d.span.line == line]
    assert found and all(d.fix is found[0].fix and d.no_fix_reason == found[0].no_fix_reason for d in found)
    return found[0]


def test_lessons_from_real_dvis_daq_code():
    src = (
        "import torch\nfrom elsewhere import MinVIS\n\n\n"
        "class Offline(MinVIS):\n"
        "    def run(self, frames, n, to_store='cpu'):\n"
        "        frames = frames.to(self.device)\n"                                          # 7
        "        a = torch.ones(n, 2).to(torch.float32).to(to_store)\n"                       # 8
        "        b = torch.IntTensor([1]).to('cuda')\n"                                       # 9
        "        self.common(frames, to_store='cuda')\n"                                      # 10
        "        return a, b\n\n"
        "def assign(C, idx):\n"
        "    cost, best = torch.min(C, dim=1)\n"
        "    first = torch.max(C, dim=0)[1]\n"
        "    best[idx[0]] = torch.as_tensor(idx[1]).to('cuda')\n"                             # 16
        "    pad = torch.full((first.shape[0],), -1).to('cuda')\n"                            # 17
        "    return cost, pad\n"
    )
    # a class whose methods read self.device has it (here from an imported base)
    d = _fix_of(src, 9)
    assert d.fix.safe and ("device", "self.device") in d.fix.ops[-1].keywords
    # a name bound to a string is a device, not a tensor: no ".device" on it
    d = _fix_of(src, 8)
    assert "to_store.device" not in d.message
    assert d.fix.safe and d.fix.ops[-1].keywords == (("dtype", "torch.float32"), ("device", "to_store"))
    # a device string argument stays a string: self.device.type, not self.device
    d = _fix_of(src, 10)
    assert d.code == "DEV004" and d.fix.ops[0].text == "self.device.type"
    # tuple-unpacked and subscripted torch results are known tensors
    d = _fix_of(src, 16)
    assert d.fix.safe and ("device", "best.device") in d.fix.ops[-1].keywords
    d = _fix_of(src, 17)
    assert d.fix.safe and ("device", "first.device") in d.fix.ops[-1].keywords


# ---------------------------------------------------------------------------------------------------
# Guards, as a property: each statement that fails without CUDA is reported bare and under a constant
# flag, and never under a real device guard, whatever the names involved.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAILING = [  # (statement, code)
    ("x = x.to('cuda')", "DEV001"),
    ("m.cuda()", "DEV002"),
    ("y = torch.zeros(3, device='cuda')", "DEV003"),
    ("torch.cuda.synchronize()", "DEV007"),
    ("torch.cuda.set_device(0)", "DEV007"),
    ("s = torch.cuda.Stream()", "DEV007"),
    ("torch.distributed.init_process_group('nccl')", "DEV008"),
    ("t = x.type(torch.cuda.HalfTensor if half else torch.cuda.FloatTensor)", "DEV003"),
    ("z = torch.ones(3).to('cuda')", "DEV001"),
]
GUARDS = [  # how a body of statements is guarded; {body} is indented by 8 spaces, {flag} a name
    "def f(x, m, half):\n    if torch.cuda.is_available():\n{body}",
    "def f(x, m, half):\n    if not torch.cuda.is_available():\n        return None\n{body4}",
    "def f(x, m, half):\n    {flag} = torch.cuda.is_available()\n    if {flag}:\n{body}",
    "@unittest.skipIf(not torch.cuda.is_available(), 'needs CUDA')\ndef f(x, m, half):\n{body4}",
    "@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')\ndef f(x, m, half):\n{body4}",
    "@unittest.skipUnless(torch.cuda.is_available(), 'needs CUDA')\ndef f(x, m, half):\n{body4}",
    "def f(x, m, half):\n    assert torch.cuda.device_count() > 0\n{body4}",
    "@skip_if_lt_x_gpu(2)\ndef f(x, m, half):\n{body4}",
]
UNGUARDED = [
    "def f(x, m, half):\n{body4}",
    "def f(x, m, half):\n    {flag} = {const}\n    if {flag}:\n{body}",
    "@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU only')\ndef f(x, m, half):\n{body4}",
]
HEADER = "import unittest\n\nimport pytest\nimport torch\n\n\n"
flags = st.from_regex(r"\A(use|has|with|run)_(gpu|cuda)[a-z]{0,4}\Z")
consts = st.sampled_from(["True", "1", "'yes'", "False"])


def _module(template, statement, flag, const="True"):
    return HEADER + template.format(body="        " + statement + "\n", body4="    " + statement + "\n",
                                    flag=flag, const=const)


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(FAILING), template=st.sampled_from(GUARDS), flag=flags)
def test_guarded_statements_are_never_reported(case, template, flag):
    statement, code = case
    src = _module(template, statement, flag)
    assert [d for d in check_source(src) if d.code == code and d.span.line > 6] == [], src


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(FAILING), template=st.sampled_from(UNGUARDED), flag=flags, const=consts)
def test_unguarded_and_constant_flag_statements_are_reported(case, template, flag, const):
    statement, code = case
    src = _module(template, statement, flag, const)
    assert any(d.code == code for d in check_source(src)), src


# ---------------------------------------------------------------------------------------------------
# DEV007 is about behaviour: what it reports raises on this machine's torch without CUDA, what it leaves
# alone runs.  Checked against the installed torch, so a torch release that changes either shows up here.

RAISES_WITHOUT_CUDA = [
    "torch.cuda.synchronize()",
    "torch.cuda.set_device(0)",
    "s = torch.cuda.Stream()",
    "s = torch.cuda.current_stream()",
    "s = torch.cuda.default_stream()",
    "torch.zeros(2).record_stream(torch.cuda.current_stream())",
    "torch.cuda.Event(enable_timing=True).record()",
    "n = torch.cuda.get_device_name(0)",
    "p = torch.cuda.get_device_properties(0)",
    "c = torch.cuda.get_device_capability(0)",
    "i = torch.cuda.current_device()",
    "f = torch.cuda.mem_get_info()",
    "torch.cuda.reset_peak_memory_stats()",
    "torch.cuda.ipc_collect()",
]
RUNS_WITHOUT_CUDA = [
    "torch.cuda.empty_cache()",
    "n = torch.cuda.device_count()",
    "m = torch.cuda.memory_allocated() + torch.cuda.max_memory_allocated() + torch.cuda.memory_reserved()",
    "torch.cuda.manual_seed_all(0)",
    "torch.cuda.manual_seed(0)",
    "torch.backends.cudnn.benchmark = True",
    "x = torch.zeros(2).to('cpu', non_blocking=True)",
    "b = list(torch.utils.data.DataLoader([1, 2], pin_memory=False))",
    "ctx = torch.cuda.stream(None)",
    "ok = torch.cuda.is_available()",
]


@pytest.mark.parametrize("statement", RAISES_WITHOUT_CUDA)
def test_dev007_reports_what_raises_without_cuda(statement):
    torch = pytest.importorskip("torch")
    src = f"import torch\n\n\ndef f():\n    {statement}\n"
    assert [d.code for d in check_source(src)] == ["DEV007"], statement
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the call does not raise here")
    with pytest.raises(Exception):
        exec(statement, {"torch": torch})


@pytest.mark.parametrize("statement", RUNS_WITHOUT_CUDA)
def test_dev007_leaves_alone_what_runs_without_cuda(statement):
    torch = pytest.importorskip("torch")
    src = f"import torch\n\n\ndef f():\n    {statement}\n"
    assert check_source(src) == [], statement
    exec(statement, {"torch": torch})
