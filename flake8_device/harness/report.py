"""Harness output: terminal table, report.json, report.md."""

from __future__ import annotations

import json
import os
from typing import List

from .runner import FAIL, HarnessReport


def _table(rows: List[List[str]], head: List[str]) -> List[str]:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*(str(c) for c in r)) for r in rows]
    return out


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def terminal(report: HarnessReport) -> str:
    lines = []
    fix = report.fix
    if fix is not None:
        lines.append(
            f"fixer: {fix.total('found')} found, {fix.total('fixed')} fixed ({fix.unsafe_count()} by unsafe fixes),"
            f" {fix.total('left')} left "
            + "(" + ", ".join(f"{k} {v}" for k, v in sorted(fix.fixed.items())) + ")"
        )
        for item in fix.left_items:
            lines.append(
                f"  left: {item['file']}:{item['line']}: {item['code']} {item['message']} ({item['reason']})"
            )
        for err in fix.errors:
            lines.append(f"  fixer error: {err}")
        if fix.mutation:
            m = fix.mutation
            lines.append(f"  mutated fix ({m['kind']}): {m['file']}:{m['line']}: {m['text']}")
    if report.setup_error:
        lines.append(f"SETUP FAILED: {report.setup_error}")
    if report.checks:
        rows = [[c.id, c.status, f"{c.seconds:.1f}s", c.name, _short(c.message)] for c in report.checks]
        lines += _table(rows, ["#", "result", "time", "check", "figures"])
    for c in report.failures:
        lines.append(f"FAIL check {c.id} ({c.name}): {c.message}")
    for key, path in report.files.items():
        lines.append(f"{key}: {path}")
    lines.append("harness: " + ("OK" if report.ok else "FAILED") + f" (exit {report.exit_code})")
    return "\n".join(lines)


def write_json(report: HarnessReport, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report.to_json(), fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(report: HarnessReport, path: str) -> None:
    if report.config.get("mode") == "project":
        from .project_report import write_project_markdown

        write_project_markdown(report, path)
        return
    out = os.path.dirname(path)
    env = report.environment
    lines = ["# flake8-device harness report", ""]
    lines.append(f"**Result: {'PASS' if report.ok else 'FAIL'}** (exit code {report.exit_code})")
    lines.append("")
    lines.append(f"- package: `{os.path.basename(report.config['package'])}`"
                 f" (builder `{report.config['builder']}`, inputs `{report.config['inputs']}`,"
                 f" objective `{report.config['objective']}`)")
    lines.append(f"- fixes: `--fix{' --unsafe-fixes' if report.config['unsafe_fixes'] else ''}`")
    lines.append(f"- environment: Python {env.get('python')}, torch {env.get('torch')}"
                 f" (CUDA build {env.get('torch_cuda_build')}), detectron2 {env.get('detectron2', '-')},"
                 f" CUDA available: {env.get('cuda_available')}" + (f" ({env['gpu']})" if env.get("gpu") else ""))
    tol = report.config["tolerances"]
    lines.append(f"- tolerances: checks 3 and 4 bitwise (`torch.equal`); check 5 float32 rtol={tol['rtol']:g},"
                 f" atol={tol['atol']:g}, integer and boolean tensors exact")
    if report.setup_error:
        lines += ["", f"**Setup failed:** {_md_escape(report.setup_error)}"]
    fix = report.fix
    if fix is not None:
        lines += ["", "## Fixes applied to the fixed copy", ""]
        lines += ["| code | found | fixed | left |", "|---|---:|---:|---:|"]
        for code in sorted(set(fix.found) | set(fix.fixed) | set(fix.left)):
            counts = (fix.found.get(code, 0), fix.fixed.get(code, 0), fix.left.get(code, 0))
            lines.append(f"| {code} | {counts[0]} | {counts[1]} | {counts[2]} |")
        lines.append(f"| **total** | {fix.total('found')} | {fix.total('fixed')} | {fix.total('left')} |")
        if fix.files_changed:
            lines += ["", "Files changed: " + ", ".join(f"`{f}`" for f in fix.files_changed)]
        for item in fix.left_items:
            lines.append(f"- left: `{item['file']}:{item['line']}` {item['code']} {_md_escape(item['message'])}"
                         f" ({_md_escape(item['reason'])})")
        for err in fix.errors:
            lines.append(f"- fixer error: {_md_escape(err)}")
        if fix.mutation:
            m = fix.mutation
            lines.append(f"- **deliberately broken fix** (`--mutate-fix {m['kind']}`): `{m['file']}:{m['line']}`"
                         f" `{m['before']}` -> `{m['after']}`")
    if report.checks:
        lines += ["", "## Checks", "", "| # | check | result | time | figures |", "|---:|---|---|---:|---|"]
        for c in report.checks:
            lines.append(
                f"| {c.id} | {_md_escape(c.name)} | **{c.status}** | {c.seconds:.1f} s | {_md_escape(c.message)} |"
            )
        failures = [c for c in report.checks if c.status == FAIL]
        if failures:
            lines += ["", "## Failures", ""]
            for c in failures:
                lines.append(f"- check {c.id} ({_md_escape(c.name)}): {_md_escape(c.message)}")
        from .project_report import _details as check_details

        lines += ["", "## Details", ""]
        lines += check_details({c.id: c for c in report.checks}, {})
    if report.seconds:
        lines += ["## Timings", ""]
        lines += [f"- {k}: {v:.1f} s" for k, v in report.seconds.items()]
    if "saliency" in report.files:
        rel = os.path.relpath(report.files["saliency"], out)
        lines += ["", "## Input-gradient saliency", "",
                  "Training path, |gradient of the objective w.r.t. each input frame|, max over channels:"
                  " fixed model on the CPU, the original under the virtual accelerator, and their difference.",
                  "", f"![saliency]({rel})"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
