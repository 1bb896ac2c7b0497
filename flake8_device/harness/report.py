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
        lines += ["", "## Details", ""]
        for c in report.checks:
            lines.append(f"### {c.id}. {c.name}: {c.status}")
            lines.append("")
            lines += _details(c)
            lines.append("")
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


def _details(c) -> List[str]:
    f = c.figures
    rows = []
    for path in ("train", "infer"):
        d = f.get(path)
        if not isinstance(d, dict):
            continue
        if "error" in d and d["error"]:
            rows.append(f"- {path}: `{_md_escape(d['error'])}` at `{_md_escape(d.get('where', ''))}`")
        if c.id == 2 and "objective" in d:
            rows.append(f"- {path}: objective {d['objective']:.6g}, {d['output_tensors']} output tensors,"
                        f" sum |input grad| {d['input_grad_abs_sum']:.6g} over {d['frames']} frames"
                        f" ({d['frames_with_zero_grad']} with zero gradient), {d['seconds']:.1f} s")
        if c.id == 3 and "outputs" in d:
            o, g = d["outputs"], d["input_grads"]
            rows.append(f"- {path}: outputs {o['equal_tensors']}/{o['compared_tensors']} tensors equal"
                        f" ({o['compared_elements']} elements), input gradients {g['equal_tensors']}/"
                        f"{g['compared_tensors']} equal ({g['compared_elements']} elements), max abs diff"
                        f" {max(o['max_abs_diff'], g['max_abs_diff']):g}; reference mismatches"
                        f" {d['reference_mismatches']}")
        if c.id == 4 and "mismatches" in d:
            rows.append(f"- {path}: {d['mismatches']} mismatch(es)"
                        + (f"; outputs and gradients equal to the fixed CPU run: {d['equal_to_fixed_cpu']}"
                           f" ({d['compared_tensors']} tensors)" if "equal_to_fixed_cpu" in d else ""))
            for p in d.get("places", []):
                rows.append(f"  - `{_md_escape(p)}`")
        if c.id == 5:
            for key in ("original_gpu_vs_fixed_gpu", "fixed_cpu_vs_fixed_gpu"):
                if key in d:
                    k = d[key]
                    rows.append(f"- {path}, {key.replace('_', ' ')}: {k['compared_tensors']} tensors,"
                                f" max abs diff {k['max_abs_diff']:.3g}, max rel diff {k['max_rel_diff']:.3g},"
                                f" {k['problem_count']} outside tolerance")
    if c.id == 5 and "reason" in f:
        rows.append(f"- skipped: {f['reason']}")
    if c.id == 2:
        rows.append(f"- seeded weights equal before loading the original's state_dict:"
                    f" {f.get('weights_equal_before_load')}; inputs repeatable: {f.get('inputs_repeatable')}")
    return rows
