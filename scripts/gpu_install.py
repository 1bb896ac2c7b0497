"""Install, from a wheel folder and without network, what this machine's Python lacks.

Used by ``make gpu-check`` (scripts/gpu_check.sh) on a GPU machine: for each wheel in
the folder (made by ``make gpu-wheels``), the distribution is installed when this
interpreter has none of that name; what is already installed (torch, numpy, a newer
packaging...) is left as it is, so the machine's own stack is never downgraded. This
project's wheel and detectron2 are always (re)installed. Dependencies are not resolved
(``--no-deps``): the folder holds the whole closure.

Usage: python scripts/gpu_install.py WHEELS_DIR [--dry-run]
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata

ALWAYS = {"flake8-device", "pb1-detectron2"}


def dist_name(wheel: str) -> str:
    return re.sub(r"[-_.]+", "-", os.path.basename(wheel).split("-")[0]).lower()


def installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def main(argv) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    folder, dry = argv[0], "--dry-run" in argv
    wheels = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".whl")) \
        if os.path.isdir(folder) else []
    if not wheels:
        print(f"[gpu-install] no wheels in {folder}: run `make gpu-wheels` where the package index is reachable,"
              " then bring the folder along", file=sys.stderr)
        return 1
    todo = [w for w in wheels if dist_name(w) in ALWAYS or not installed(dist_name(w))]
    kept = [dist_name(w) for w in wheels if w not in todo]
    print(f"[gpu-install] {len(todo)} of {len(wheels)} wheels to install; already here: {', '.join(kept) or 'none'}",
          file=sys.stderr)
    if dry or not todo:
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall", "--quiet"]
    if sys.prefix == sys.base_prefix and not os.access(_site(), os.W_OK):
        cmd.append("--user")  # the system Python, not writable: the user's site-packages
    proc = subprocess.run(cmd + todo, capture_output=True, text=True)
    if proc.returncode and "externally-managed-environment" in proc.stderr:
        proc = subprocess.run(cmd + ["--break-system-packages"] + todo, capture_output=True, text=True)
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.returncode


def _site() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
