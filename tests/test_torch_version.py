"""``--torch-version X.Y``: from 2.6 on, fixes spell the device with ``torch.accelerator``.

Through the command: the fix texts of DEV001-DEV004 and the module device with and without the
option, the ``torch-version`` configuration key, bad values (exit 2), and the fixed code run on this
CPU and on the virtual accelerator, where ``torch.accelerator`` reports the accelerator.
"""

from __future__ import annotations

import io
import pathlib

import pytest
import torch
from hypothesis import given, settings, strategies as st

from flake8_device import cli
from flake8_device.options import parse_torch_version
from flake8_device.virtual import virtual_device, virtual_device_of

ACC_STR = 'torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"'
ACC_DEV = 'torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")'
CUDA_STR = '"cuda" if torch.cuda.is_available() else "cpu"'
CUDA_DEV = 'torch.device("cuda" if torch.cuda.is_available() else "cpu")'

# One snippet per code: each function returns a tensor the hardcoded device made.
SNIPPETS = {
    "DEV001": "import torch\n\n\ndef run(x):\n    return x.to(\"cuda\") * 3\n",
    "DEV002": "import torch\n\n\ndef run(x):\n    return x.cuda() + 1\n",
    "DEV003": "import torch\n\n\ndef run(x):\n    return torch.arange(3, device=\"cuda\").float() * x.sum()\n",
    "DEV004": "import torch\n\n\ndef run(x, device=\"cuda\"):\n    return x.to(device) - 1\n",
}
# Where the fix's device comes from: the module device it defines, or the availability fallback.
SPELLING = {"DEV001": (ACC_DEV, CUDA_DEV), "DEV002": (ACC_DEV, CUDA_DEV),
            "DEV003": (ACC_STR, CUDA_STR), "DEV004": (ACC_STR, CUDA_STR)}


def _fix(tmp_path: pathlib.Path, code: str, *flags: str, name: str = "snippet.py") -> str:
    path = tmp_path / name
    path.write_text(SNIPPETS[code])
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["--select", code, "--fix", "--unsafe-fixes", *flags, str(path)], stdout=out, stderr=err)
    assert rc in (0, 1), err.getvalue()
    return path.read_text()


@pytest.mark.parametrize("code", sorted(SNIPPETS))
def test_fix_text_with_and_without_the_option(code, tmp_path):
    new, old = SPELLING[code]
    plain = _fix(tmp_path, code, "--isolated")
    assert old in plain and "torch.accelerator" not in plain
    modern = _fix(tmp_path, code, "--isolated", "--torch-version", "2.6")
    assert new in modern and "torch.cuda" not in modern and '"cuda"' not in modern
    # older than 2.6: today's text, byte for byte
    assert _fix(tmp_path, code, "--isolated", "--torch-version", "2.5") == plain


def test_module_device_definition(tmp_path):
    fixed = _fix(tmp_path, "DEV001", "--isolated", "--torch-version", "2.7")
    assert f"DEVICE = {ACC_DEV}\n" in fixed
    assert f"DEVICE = {CUDA_DEV}\n" in _fix(tmp_path, "DEV001", "--isolated")


def test_indexed_literal_keeps_todays_text(tmp_path):
    """``"cuda:1"`` has no torch.accelerator equivalent (the accelerator's index is its current one)."""
    path = tmp_path / "idx.py"
    path.write_text('import torch\n\n\ndef run(x, device="cuda:1"):\n    return x.to(device)\n')
    cli.main(["--isolated", "--select", "DEV004", "--fix", "--torch-version", "2.6", str(path)],
             stdout=io.StringIO(), stderr=io.StringIO())
    assert 'device="cuda:1" if torch.cuda.is_available() else "cpu"' in path.read_text()


@pytest.mark.parametrize("kind", ["toml", "cfg"])
def test_configuration_key(kind, tmp_path):
    if kind == "toml":
        (tmp_path / "pyproject.toml").write_text('[tool.flake8-device]\ntorch-version = "2.6"\n')
    else:
        (tmp_path / "setup.cfg").write_text("[flake8]\ntorch-version = 2.6\n")
    config = str(tmp_path / ("pyproject.toml" if kind == "toml" else "setup.cfg"))
    assert ACC_STR in _fix(tmp_path, "DEV003", "--config", config)
    # the flag overrides the file
    assert CUDA_STR in _fix(tmp_path, "DEV003", "--config", config, "--torch-version", "2.5")


@pytest.mark.parametrize("value", ["x", "1", "2.", "two.six", "2.6x", ""])
def test_bad_value_is_a_usage_error(value, tmp_path):
    path = tmp_path / "s.py"
    path.write_text(SNIPPETS["DEV003"])
    err = io.StringIO()
    assert cli.main(["--isolated", "--torch-version", value, str(path)], stdout=io.StringIO(), stderr=err) == 2
    assert "--torch-version" in err.getvalue()


@pytest.mark.parametrize("value", ['"x"', "2.6"])
def test_bad_value_in_the_configuration_exits_2(value, tmp_path):
    (tmp_path / "pyproject.toml").write_text(f"[tool.flake8-device]\ntorch-version = {value}\n")
    path = tmp_path / "s.py"
    path.write_text(SNIPPETS["DEV003"])
    err = io.StringIO()
    rc = cli.main(["--config", str(tmp_path / "pyproject.toml"), str(path)], stdout=io.StringIO(), stderr=err)
    assert rc == 2 and "torch-version" in err.getvalue()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 99), st.integers(0, 99), st.one_of(st.none(), st.integers(0, 9)))
def test_parse_torch_version(major, minor, patch):
    text = f"{major}.{minor}" + ("" if patch is None else f".{patch}")
    assert parse_torch_version(text) == (major, minor)
    with pytest.raises(ValueError):
        parse_torch_version(str(major))


def _run(text: str):
    ns: dict = {}
    exec(compile(text, "<snippet>", "exec"), ns)
    torch.manual_seed(0)
    return ns["run"](torch.arange(4.0))


@pytest.mark.parametrize("code", sorted(SNIPPETS))
def test_fixed_code_runs_here_and_equals_the_original_on_the_virtual_accelerator(code, tmp_path):
    fixed = _fix(tmp_path, code, "--isolated", "--torch-version", "2.6")
    assert "torch.accelerator" in fixed
    here = _run(fixed)  # this CPU-only machine: no accelerator, the CPU
    assert here.device.type == "cpu"
    with virtual_device("cuda", mode="report") as vd:
        assert torch.accelerator.is_available()
        want = _run(SNIPPETS[code])
        got = _run(fixed)
        assert virtual_device_of(want).type == "cuda"
        assert virtual_device_of(got) == virtual_device_of(want)
    assert not vd.mismatches
    assert torch.equal(got, want) and torch.equal(here, want)


def test_flake8_plugin_takes_the_option(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.py"
    path.write_text(SNIPPETS["DEV003"])
    flake8 = [sys.executable, "-m", "flake8", "--isolated", "--select", "DEV", str(path)]
    ok = subprocess.run(flake8 + ["--torch-version", "2.6"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 1 and "DEV003" in ok.stdout, ok.stderr
    bad = subprocess.run(flake8 + ["--torch-version", "x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--torch-version" in bad.stderr and "DEV003" not in bad.stdout
