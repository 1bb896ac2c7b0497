"""The GPU check's installer and script, as far as they run without a GPU (docs/harness.md)."""
import importlib.util
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _installer():
    spec = importlib.util.spec_from_file_location("gpu_install", REPO / "scripts" / "gpu_install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_wheel_names_become_distribution_names():
    inst = _installer()
    assert inst.dist_name("pb1_detectron2-0.6-py3-none-any.whl") == "pb1-detectron2"
    assert inst.dist_name("/w/ast_grep_py-0.51.0-cp312-cp312-manylinux_2_28_x86_64.whl") == "ast-grep-py"
    assert inst.dist_name("typing_extensions-4.16.0-py3-none-any.whl") == "typing-extensions"


def test_installer_keeps_what_is_installed_and_names_what_is_missing(tmp_path, capsys):
    inst = _installer()
    for name in ("pytest-1.0-py3-none-any.whl", "zz_not_installed_here-1.0-py3-none-any.whl",
                 "flake8_device-0.1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    assert inst.main([str(tmp_path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    # pytest is here (kept); the unknown one and this project (always) are to install
    assert "2 of 3 wheels to install" in err and "already here: pytest" in err


def test_installer_without_wheels_says_how_to_make_them(tmp_path, capsys):
    assert _installer().main([str(tmp_path / "none")]) == 1
    assert "make gpu-wheels" in capsys.readouterr().err


def test_gpu_check_without_wheels_fails_clearly(tmp_path):
    env = dict(os.environ, PY=sys.executable, WHEELS=str(tmp_path / "none"), OUT=str(tmp_path / "out"))
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "make gpu-wheels" in proc.stderr and "install: FAILED" in proc.stderr
