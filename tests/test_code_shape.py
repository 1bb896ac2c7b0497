"""Functions of the fixer, the runner and the output stay short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 100  # lines, decorators and docstring included


def test_no_function_of_the_fixers_runner_or_output_is_over_100_lines():
    files = sorted((ROOT / "fixers").glob("*.py")) + [ROOT / "flake8_device" / "output.py",
                                                      ROOT / "flake8_device" / "runner.py"]
    long = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - first + 1 > LIMIT:
                    long.append(f"{file.name}:{node.lineno} {node.name}")
    assert long == []
