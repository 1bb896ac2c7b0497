"""report.md of a project run: what model, what inputs, which fixes, what each
check compared, and what the run proves and does not prove."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from .project import SECTION_TITLES
from .runner import FAIL, PASS, SKIP, HarnessReport


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, (int, float)) else "-"


def _int(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _section_table(sections: Dict[str, Any], state_elements: Any = None) -> List[str]:
    rows = ["| what | tensors | equal | elements | max abs diff |", "|---|---:|---:|---:|---:|"]
    for sec, f in sections.items():
        elements = _int(f["compared_elements"])
        diff = f"{f['max_abs_diff']:g}"
        if sec == "state":  # compared through digests: the elements are those of the weights
            elements = f"{_int(state_elements)} (by digest)" if state_elements else "(by digest)"
            diff = "-" if f["problems"] else "0"
        rows.append(f"| {_esc(SECTION_TITLES.get(sec, sec))} | {f['compared_tensors']} | {f['equal_tensors']} |"
                    f" {elements} | {diff} |")
    return rows


def write_project_markdown(report: HarnessReport, path: str) -> None:
    c = report.config
    env = report.environment
    model = c.get("model") or {}
    facts = c.get("facts") or {}
    fxf = facts.get("fixed_cpu", {})
    size = c.get("inputs_detail") or {}
    checks = {k.id: k for k in report.checks}
    kind = "a plain PyTorch project (entry function)" if c.get("entry") else "a detectron2 project"
    lines = [f"# flake8-device harness report: {kind}", ""]
    status = "PASS" if report.ok else "FAIL"
    lines.append(f"**Result: {status}** (exit code {report.exit_code}): "
                 + ", ".join(f"check {k.id} {k.status}" for k in report.checks))
    lines += ["", "## What was run", ""]
    lines += _what_entry(c, facts) if c.get("entry") else _what_d2(c, facts, model, fxf, size)
    lines.append(f"- processes: {', '.join(f'{r} {s} s' for r, s in c.get('process_seconds', {}).items())}"
                 f" ({c.get('jobs')} at a time, {c.get('threads')} torch thread(s) each)")
    lines.append(f"- environment: Python {env.get('python')}, torch {env.get('torch')} (CUDA build"
                 f" {env.get('torch_cuda_build')}), detectron2 {env.get('detectron2', '-')}, CUDA available:"
                 f" {env.get('cuda_available')}" + (f" ({env['gpu']})" if env.get("gpu") else ""))
    if report.setup_error:
        lines += ["", f"**Setup failed:** {_esc(report.setup_error)}"]

    lines += _fixes(report.fix, c)
    if report.checks:
        lines += ["", "## Checks", "", "| # | check | result | time | figures |", "|---:|---|---|---:|---|"]
        for k in report.checks:
            lines.append(f"| {k.id} | {_esc(k.name)} | **{k.status}** | {k.seconds:.1f} s | {_esc(k.message)} |")
        lines += ["", "## Details", ""]
        lines += _details(checks, facts)
        lines += ["", "## What this proves and what it does not", ""]
        lines += _claims(checks, facts, report)
    if report.seconds:
        lines += ["", "## Timings", ""]
        lines += [f"- {k}: {v:.1f} s" for k, v in report.seconds.items()]
    if "saliency" in report.files:
        sal = c.get("saliency") or {}
        rel = os.path.relpath(report.files["saliency"], os.path.dirname(path))
        lines += ["", "## Inference-path saliency", "",
                  "|gradient| of the inference objective (sum of the means of the captured floating-point tensors"
                  " that depend on the frames) with respect to each input frame, max over channels: the fixed"
                  " model on the CPU, the original under the virtual accelerator, and their difference"
                  f" (max |difference| {sal.get('max_abs_saliency_diff', 0):g}; frames with zero saliency:"
                  f" {sal.get('frames_with_zero_saliency', 0)}).", "", f"![saliency]({rel})"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _what_d2(c, facts, model, fxf, size) -> List[str]:
    """The project, config, set-up, model, weights and inputs of a detectron2 run."""
    lines: List[str] = []
    lines.append(f"- project: `{os.path.basename(c['project'])}` (`{_esc(c['project'])}`), copied twice into"
                 f" `{_esc(os.path.join(c['out'], 'project'))}` (`original/`, `fixed/`)")
    lines.append(f"- config: `{_esc(c['config_file'])}`" + (f" with `{' '.join(c['opts'])}`" if c.get("opts") else "")
                 + f"; set up by {', '.join('`' + s + '`' for s in c.get('setup_functions', []))}"
                 f" (read from `{_esc(c.get('setup_from'))}`"
                 + "".join(f"; `{_esc(r['script'])}` rejected the config: {_esc(r['error'])}"
                           for r in c.get("setups_rejected") or [])
                 + "); registering imports:"
                 f" {', '.join('`' + s + '`' for s in c.get('registering_imports', []))}")
    if model:
        lines.append(f"- model: `{model.get('class')}` (`MODEL.META_ARCHITECTURE` = `{fxf.get('meta_architecture')}`),"
                     f" {_int(model.get('parameters'))} parameters in {model.get('parameter_tensors')} tensors"
                     f" ({_int(model.get('trainable_parameters'))} trainable), {model.get('state_tensors')}"
                     " state-dict tensors; built by detectron2's `build_model(cfg)`")
    weq = {r: f.get("weights_equal_before_load") for r, f in facts.items() if "weights_equal_before_load" in f}
    writer = next((r for r, f in sorted(facts.items()) if "state_written_to" in f), "no run")
    lines.append(f"- weights: **random**, `MODEL.WEIGHTS` empty; seed {c.get('seed')}; the first model built"
                 f" (`{writer}`) wrote its state dict to `runs/weights.pt` and the other runs loaded that file"
                 + (" (each process's own seeded weights were already equal to it: "
                    + ", ".join(f"{r} {v}" for r, v in sorted(weq.items())) + ")" if weq else ""))
    if size and size.get("format") == "image":
        lines.append(
            f"- inputs: one synthetic image, {size.get('channels')} x {size.get('height')} x {size.get('width')}"
            f" (multiples of the size divisibility {size.get('divisibility')}), uint8 values 0-255, in the format"
            f" of the project's image dataset mapper ({_esc(c.get('input_format_from'))}): `image`, `instances`"
            f" (`gt_boxes`, `gt_masks`, `gt_classes` below {fxf.get('num_classes')}), `sem_seg`, `height`,"
            " `width`, `file_name`, `image_id`")
    elif size:
        lines.append(
            f"- inputs: one synthetic video of {size.get('frames')} frames ({_esc(size.get('frames_from'))}; the"
            f" config samples {fxf.get('config_frames')} frames in training), {size.get('channels')} x"
            f" {size.get('height')} x {size.get('width')} (height and width multiples of the size divisibility"
            f" {size.get('divisibility')}), uint8 values 0-255, in the format of the project's video dataset mapper"
            f" ({_esc(c.get('input_format_from'))}): `image` (list of frames),"
            f" `instances` (per frame: `gt_boxes`, `gt_masks` as `BitMasks`, `gt_classes` below"
            f" {fxf.get('num_classes')}, `gt_ids`), `height`, `width`, `video_len`, `frame_idx`, `file_names`")
    if size:
        lines.append("- the compared passes run as a user runs them: training on the uint8 inputs, inference under"
                     " `torch.no_grad()`; a separate optional pass gives the frames as float32 tensors that require"
                     " grad, for the input gradients and the saliency")
    lines.append(f"- training objective: the sum of the {fxf.get('losses')} losses the model returns in `train()`"
                 " mode; inference: `eval()` forward under `torch.no_grad()`, outputs flattened to tensors (Python numbers as 0-dim tensors)")
    return lines


def _what_entry(c, facts) -> List[str]:
    """The project, entry function, model, weights and inputs of a plain PyTorch run."""
    model = c.get("model") or {}
    fxf = facts.get("fixed_cpu", {})
    lines = [f"- project: `{os.path.basename(c['project'])}` (`{_esc(c['project'])}`), copied twice into"
             f" `{_esc(os.path.join(c['out'], 'project'))}` (`original/`, `fixed/`)",
             f"- entry function: `{_esc(c['entry'])}` (called in each process after seeding Python, NumPy and"
             f" torch with {c.get('seed')}); objective `{_esc(fxf.get('objective'))}`; paths"
             f" {', '.join(fxf.get('paths') or [])}"]
    if model:
        lines.append(f"- model: `{model.get('class')}`, {_int(model.get('parameters'))} parameters in"
                     f" {model.get('parameter_tensors')} tensors ({_int(model.get('trainable_parameters'))}"
                     f" trainable), {model.get('state_tensors')} state-dict tensors")
    writer = next((r for r, f in sorted(facts.items()) if "state_written_to" in f), "no run")
    lines.append(f"- weights: as the entry function builds them; the first model built (`{writer}`) wrote its"
                 " state dict (with its `_metadata`) to `runs/weights.pt` and the other runs loaded that file")
    lines.append("- inputs: the entry's, on the CPU, moved with `.to(device)` for a run on the accelerator;"
                 " training: `train()`, the objective, backward; inference: `eval()` under `torch.no_grad()`;"
                 " a separate optional pass makes the floating-point inputs require grad (input gradients,"
                 " saliency of the objective on the inference outputs)")
    return lines


def _fixes(fix, c) -> List[str]:
    """The fixes the fixed copy (and the original, by --original-fixes) got."""
    lines: List[str] = []
    if fix is not None:
        lines += ["", "## Fixes applied to the fixed copy", "",
                  f"`flake8-device --fix{' --unsafe-fixes' if c['unsafe_fixes'] else ''}` on every Python file of"
                  f" the fixed copy: {fix.total('fixed')} of {fix.total('found')} diagnostics fixed in"
                  f" {len(fix.files_changed)} files, **{fix.unsafe_count()} of them by unsafe fixes**,"
                  f" {fix.total('left')} left.", "",
                  "| code | found | fixed | of which unsafe | left |", "|---|---:|---:|---:|---:|"]
        unsafe_by: Dict[str, int] = {}
        for item in fix.fixed_items:
            if not item.get("safe", True):
                unsafe_by[item["code"]] = unsafe_by.get(item["code"], 0) + 1
        for code in sorted(set(fix.found) | set(fix.fixed) | set(fix.left)):
            lines.append(f"| {code} | {fix.found.get(code, 0)} | {fix.fixed.get(code, 0)} |"
                         f" {unsafe_by.get(code, 0)} | {fix.left.get(code, 0)} |")
        lines.append(f"| **total** | {fix.total('found')} | {fix.total('fixed')} | {fix.unsafe_count()} |"
                     f" {fix.total('left')} |")
        unsafe = [i for i in fix.fixed_items if not i.get("safe", True)]
        if unsafe:
            lines += ["", "Unsafe fixes applied (each may change behaviour in some program; checks 3 and 4 show"
                      " whether it did here):", ""]
            for i in unsafe:
                lines.append(f"- `{i['file']}:{i['line']}` {i['code']}: {_esc(i['description'])}")
        if fix.left_items:
            lines += ["", "Left unfixed:", ""]
            for i in fix.left_items:
                lines.append(f"- `{i['file']}:{i['line']}` {i['code']} {_esc(i['message'])} ({_esc(i['reason'])})")
        for err in fix.errors:
            lines.append(f"- fixer error: {_esc(err)}")
    of = c.get("original_fix")
    if of:
        lines += ["", f"The **original copy** also got the fixes of {', '.join(c['original_fixes'])}"
                  f" (`--original-fixes`): {of['totals']['fixed']} fix(es) in {', '.join(of['files_changed'])}."
                  " Everything else in it is the project's code unchanged."]
    else:
        lines += ["", "The original copy is the project's code unchanged."]

    return lines


def _details(checks, facts) -> List[str]:
    rows: List[str] = []
    k = checks.get(1)
    if k:
        rows += [f"### 1. {k.name}: {k.status}", ""]
        for p in ("train", "infer"):
            d = k.figures.get(p)
            if isinstance(d, dict) and d.get("error"):
                rows.append(f"- {p}: `{_esc(d['error'])}` at `{_esc(d.get('where', ''))}`")
        if k.figures.get("error"):
            rows.append(f"- `{_esc(k.figures['error'])}`")
        rows.append("")
    k = checks.get(2)
    if k:
        rows += [f"### 2. {k.name}: {k.status}", ""]
        if k.status == FAIL:
            rows.append(f"- {_esc(k.message)}")
        t, i = k.figures.get("train"), k.figures.get("infer")
        if t:
            rows.append(f"- train: {str(t['losses']) + ' losses, ' if t.get('losses') is not None else ''}objective"
                        f" {_num(t['objective'])};"
                        f" {t['parameter_gradients']} parameter gradients, all finite,"
                        f" {t['parameter_gradients'] - t['parameter_gradients_all_zero']} with a non-zero element and"
                        f" {t['parameter_gradients_all_zero']} all zero"
                        + (f" (e.g. {', '.join('`' + n + '`' for n in t['parameter_gradients_all_zero_examples'][:5])})"
                           if t["parameter_gradients_all_zero"] else "")
                        + f"; {t['parameters_without_gradient']} trainable parameters got no gradient (`None`)")
            if t["input_frames_with_gradient"]:
                rows.append(f"- train: input frames with a gradient: {t['input_frames_with_gradient']}"
                            f" ({t['input_frames_with_nonzero_gradient']} non-zero)")
            else:
                rows.append(f"- train: {_esc(t.get('input_gradient_note') or 'no input gradient')}; so the"
                            " training path is compared through its losses and **parameter** gradients")
        if i:
            if i.get("saliency_frames"):
                sal = (f"saliency objective {_num(i.get('saliency_objective'))}; saliency on {i['saliency_frames']}"
                       f" frames, {i['saliency_frames_all_zero']} of them all zero")
            else:
                sal = f"saliency {_esc(i.get('saliency_note') or 'not available')}"
            cap = (f" {i['captured_tensors']} tensors captured from"
                   f" {', '.join('`' + n + '`' for n in i.get('captured_from') or [])};" if i.get("captured_from") else "")
            how = " (under `torch.no_grad()`)" if i.get("captured_from") is not None else ""
            rows.append(f"- infer{how}: {i['output_tensors']} output tensors, all finite;{cap} {sal}")
        rows.append("")
    for cid in (3, 4):
        k = checks.get(cid)
        if not k:
            continue
        rows += [f"### {cid}. {k.name}: {k.status}", ""]
        secs = k.figures.get("sections") or {}
        if secs:
            rows += _section_table(secs, (facts.get("fixed_cpu") or {}).get("state_elements"))
            rows.append("")
            rows.append(f"{k.figures.get('compared_tensors')} tensors compared with `torch.equal`, max abs diff"
                        f" {k.figures.get('max_abs_diff', 0):g}.")
        if cid == 3 and k.figures.get("weak_evidence"):
            rows.append("**Weak evidence on the inference path:** " + _esc("; ".join(k.figures["weak_evidence"])))
            rows.append("")
        if cid == 3:
            rows.append(f"Device mismatches the virtual accelerator found in the original itself:"
                        f" {k.figures.get('reference_mismatch_places', 0)} place(s).")
            for m in k.figures.get("reference_mismatches", []):
                rows.append(f"- `{m['file']}:{m['line']}` {m['op']} [{', '.join(m['devices'])}] x{m['count']}")
        if cid == 4:
            rows.append("Device mismatches in the fixed model under the virtual accelerator:"
                        f" {k.figures.get('mismatches')}.")
            for m in k.figures.get("places", []):
                rows.append(f"- `{m['file']}:{m['line']}` {m['op']} [{', '.join(m['devices'])}] x{m['count']}")
        rows.append("")
    k = checks.get(5)
    if k:
        rows += [f"### 5. {k.name}: {k.status}", "", f"- {_esc(k.message)}", ""]
    return rows


def _claims(checks, facts, report) -> List[str]:
    out: List[str] = []
    if report.setup_error:
        return [f"- **Nothing is proven either way.** {_esc(report.setup_error)}", "- No check was judged: a run"
                " that cannot be set up says nothing about the fix. Fix the set-up as the message says and run"
                " again."]
    st = {cid: k.status for cid, k in checks.items()}
    if st.get(1) == SKIP:
        out.append("- The unmodified original already runs on this CPU on these paths (check 1 SKIP): there was"
                   " nothing device-specific to fix on them; checks 2-4 show the fixed copy computes the same.")
    if st.get(1) == PASS:
        out.append("- The unmodified original cannot run on this CPU-only machine: it stops with a device error"
                   " (check 1).")
    if st.get(2) == PASS:
        out.append("- The fixed model builds, trains (forward, loss, backward) and infers on the CPU with finite"
                   " values (check 2).")
    if st.get(3) == PASS:
        k = checks[3]
        out.append(f"- Where the original runs (under the virtual accelerator, i.e. its own code with the"
                   f" accelerator modelled on the CPU), the fixed model on the CPU computes bitwise the same"
                   f" {k.figures.get('compared_tensors')} tensors: weights, every loss, every parameter gradient,"
                   " every inference output, the captured intermediate tensors and the saliency (check 3).")
    if st.get(4) == PASS:
        out.append("- On an accelerator, the fixed model would meet no device mismatch on these paths, as modelled"
                   " by the virtual device's rules (check 4).")
    f2 = checks.get(2).figures.get("train", {}) if checks.get(2) else {}
    if f2 and not f2.get("input_frames_with_gradient"):
        out.append("- Not compared: gradients with respect to the input on the **training** path; none exist"
                   " there (the model computes the frames' features without autograd). Parameter gradients were"
                   " compared instead, and input gradients on the inference path (saliency).")
    if checks.get(3) and checks[3].figures.get("weak_evidence"):
        out.append("- **Weak evidence on the inference path:** " + _esc("; ".join(checks[3].figures["weak_evidence"])))
    f2i = checks.get(2).figures.get("infer", {}) if checks.get(2) else {}
    if f2i and not f2i.get("saliency_frames"):
        out.append(f"- Not compared: the saliency (input gradients of the inference path): {_esc(f2i.get('saliency_note'))}.")
    if st.get(5) == SKIP:
        out.append(f"- **Not proven: behaviour on a real GPU.** Check 5 was skipped: {checks[5].message}. The"
                   " virtual accelerator checks device placement rules and computes with CPU kernels; GPU"
                   " numerics, CUDA random streams, the compiled ops a GPU build would use and mixed precision are"
                   " not exercised. Run the same command on a machine with a GPU to get check 5.")
    elif st.get(5) == PASS:
        out.append("- On the real GPU the original and the fixed model agree within tolerance (check 5).")
    if report.config.get("entry"):
        out.append("- Only the paths the entry's inputs take were exercised, with the weights it builds. Other"
                   " inputs, sizes, trained weights and data-dependent branches not taken here are not covered.")
    else:
        out.append("- Only the paths these inputs take were exercised: one synthetic video of the stated size, the"
                   " model's current training stage, and the code the config selects. Other configs, tasks"
                   " (e.g. `TEST.TASK`), longer videos and data-dependent branches not taken here are not covered.")
    for cid in sorted(checks):
        if checks[cid].status == FAIL:
            out.append(f"- **Check {cid} failed**: {_esc(checks[cid].message)}")
    return out
