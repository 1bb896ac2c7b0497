"""docs/rules.md against the rule registry: the two cannot drift."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from flake8_device.rules import REGISTRY
from flake8_device.rules.__main__ import markdown_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")


def test_docs_table_is_the_registry_table():
    """Fails when a code, what it finds, its default or its fix safety differs between docs/rules.md and the
    registry: regenerate with ``python -m flake8_device.rules --markdown``."""
    start = DOC.index("| code | finds |")
    end = DOC.index("\n\n", start)
    assert DOC[start:end + 1] == markdown_table()


@pytest.mark.parametrize("code", sorted(REGISTRY))
def test_docs_message_is_the_rules_message(code):
    m = re.search(rf"^## {code}\n\n\*\*Message:\*\* `(.*?)`", DOC, re.M | re.S)
    assert m, f"docs/rules.md has no ## {code} section with a **Message:**"
    assert " ".join(m.group(1).split()) == REGISTRY[code].message


def test_generator_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "flake8_device.rules", "--markdown"], check=True,
                         capture_output=True, text=True).stdout
    assert out == markdown_table() and "| [DEV001](#dev001) |" in out
