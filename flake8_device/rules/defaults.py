"""DEV004: accelerator strings as parameter defaults, device-like arguments and constants."""

from __future__ import annotations

import ast

from ..diagnostics import Fix, InsertBefore, ReplaceNode, Span
from ..facts import param_defaults
from ..inference import NO, YES, Evidence, self_device_evidence
from .common import availability_fix, device_fix, is_device_like_name, safe_fallback_wins
from .registry import rule

DEV004 = rule(
    "DEV004",
    summary="accelerator string as a default, device-like argument or constant",
    finds="accelerator string as a parameter default, device-like argument or constant",
    fix_safety="safe",
    message="accelerator device \"cuda\" as the default of parameter 'to_store'; default to the model's device",
    # a literal another rule reports as a whole (a .to() argument, a device= keyword, an autocast
    # device_type, a map_location dict, a statement DEV007 guards) is theirs
    yields_to=("DEV001", "DEV003", "DEV005", "DEV006", "DEV007"),
)


def _fallback(ck, literal, dev_type, plain, reason):
    if isinstance(literal, ast.Call) and literal.args and isinstance(literal.args[0], ast.Constant):
        literal = literal.args[0]  # torch.device("cuda"): keep the call, guard its string
    built = isinstance(literal, (ast.JoinedStr, ast.BinOp)) or (
        isinstance(literal, ast.Call) and isinstance(literal.func, ast.Attribute) and literal.func.attr == "format")
    if not (plain or built or isinstance(literal, ast.Constant)):
        return None, reason
    return availability_fix(ck, literal, dev_type, reason)


@DEV004.on("call.keywords", skip_guarded=True)
def check_call_keywords(ck, node: ast.Call) -> None:
    """``self.common_inference(x, to_store="cuda")``, ``torch.load(f, map_location="cuda")``."""
    for k in node.keywords:
        if k.arg is None or k.arg in ("device", "device_type") or not is_device_like_name(k.arg):
            continue
        if ck.claimed(k.value):
            continue
        lit = ck.device_literal(k.value)
        if lit is None:
            continue
        ck.claim(k.value)
        dev_type, plain = lit
        fix, why, choice = device_fix(ck, node, k.value, plain, set(), as_string=isinstance(k.value, ast.Constant))
        # a device without evidence (a label, a bare parameter): the availability test is safe
        fix, why = safe_fallback_wins(fix, why, lambda: _fallback(ck, k.value, dev_type, plain, why))
        ck.report("DEV004", k.value, f"accelerator device {ck.src(k.value)} passed as {k.arg}=; "
                                     "pass the device of the model or the data", fix, why, choice=choice)


@DEV004.on("function_def", skip_guarded=True)
def check_defaults(ck, fn) -> None:
    """``def forward_offline_mode(self, ..., to_store="cuda")``."""
    for param, default in param_defaults(fn):
        lit = ck.device_literal(default)
        if lit is None:
            continue
        ck.claim(default)
        dev_type, plain = lit
        fix, why = _default_fix(ck, fn, param.arg, default, dev_type, plain)
        ck.report("DEV004", default, f"accelerator device {ck.src(default)} as the default of parameter "
                                     f"'{param.arg}'; default to the model's device", fix, why)


def _default_fix(ck, fn, name, default, dev_type, plain):
    cls = ck.func_info(fn).cls  # set only for a method taking ``self`` directly in a class
    verdict = self_device_evidence(ck, cls) if cls is not None and cls.has_device else (NO, "", None)
    if cls is not None and verdict[0] != NO and fn.name not in ("__init__", "device"):
        point = ck.body_insertion_point(fn)
        if point is not None:
            span, indent, nl = point
            string = verdict[2] is Evidence.DEVICE_STRING
            value = "self.device.type" if isinstance(default, ast.Constant) and not string else "self.device"
            text = f"{indent}if {name} is None:{nl}{indent}    {name} = {value}{nl}"
            ops = (ReplaceNode(Span.of(default), "None"), InsertBefore(span, text))
            why = "" if verdict[0] == YES else f" ({verdict[1]}: unsafe)"
            return Fix(ops, plain and verdict[0] == YES, f"default None, then {value}: the enclosing class "
                                                          f"{cls.node.name} has `self.device`{why}"), None
    return _fallback(ck, default, dev_type, plain, "no model device to default to")


@DEV004.on("assign", skip_guarded=True)
def check_assign(ck, node) -> None:
    """``DEVICE = "cuda"`` or ``self.device = "cuda"``."""
    if node.value is None:
        return
    lit = ck.device_literal(node.value)
    if lit is None or (isinstance(node.value, ast.Call) and ck.resolve(node.value.func) == "torch.device"):
        return  # torch.device("cuda") is DEV003 wherever it appears
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
    built = not isinstance(node.value, ast.Constant)  # "cuda:{}".format(rank), f"cuda:{rank}", "cuda:%d" % rank
    if ck.func_stack and not built and not any(is_device_like_name(n) for n in names):
        return  # inside a function only device-like names count (``name = "cuda"`` may be a label)
    ck.claim(node.value)
    dev_type, plain = lit
    fix, why = _fallback(ck, node.value, dev_type, plain, "device built at run time; check availability by hand")
    names = ", ".join(ck.src(t) for t in targets)
    ck.report("DEV004", node.value, f"accelerator device {ck.src(node.value)} assigned to {names}; "
                                    "check availability or take the device from the model", fix, why)


# ---- script defaults: argparse, click, dataclass fields ------------------------------------------

_OPTION_CALLEES = ("click.option", "typer.Option")


def _option_names(ck, node: ast.Call):
    """The names an ``add_argument`` / ``click.option`` call declares (``--eval-device`` -> ``eval_device``),
    or None when ``node`` declares no command-line option."""
    func = node.func
    is_argparse = isinstance(func, ast.Attribute) and func.attr == "add_argument"
    if not is_argparse and ck.resolve(func) not in _OPTION_CALLEES:
        return None
    names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    names += [k.value.value for k in node.keywords
              if k.arg in ("dest", "param_decls") and isinstance(k.value, ast.Constant)
              and isinstance(k.value.value, str)]
    return [n.lstrip("-").replace("-", "_") for n in names]


def _dataclass_field_name(ck, node: ast.Call):
    """``device: str = field(default="cuda")`` in a ``@dataclass``: the field's name, else None."""
    if ck.resolve(node.func) != "dataclasses.field" or ck.func_stack or not ck.class_stack:
        return None
    stmt = ck.statement
    if not (isinstance(stmt, ast.AnnAssign) and stmt.value is node and isinstance(stmt.target, ast.Name)):
        return None
    decorators = ck.class_stack[-1].node.decorator_list
    if not any(ck.resolve(d.func if isinstance(d, ast.Call) else d) == "dataclasses.dataclass"
               for d in decorators):
        return None
    return stmt.target.id


@DEV004.on("call.keywords", skip_guarded=True)
def check_script_default(ck, node: ast.Call) -> None:
    """``parser.add_argument("--device", default="cuda")``, ``@click.option("--device", default="cuda")``,
    ``device: str = field(default="cuda")`` in a ``@dataclass``: a script's device defaults to an
    accelerator, so the script fails where it is missing unless the user passes ``--device cpu``.

    Only options and fields whose name is device-like (``--device``, ``--eval-device``, ``dest="device"``);
    a default that is already an availability conditional, or ``"cpu"``, is not a literal accelerator and
    is not reported.  Fix (safe for a plain string): ``"cuda" if torch.cuda.is_available() else "cpu"``, the
    same default wherever CUDA exists.
    """
    default = next((k for k in node.keywords if k.arg == "default"), None)
    if default is None or ck.claimed(default.value):
        return
    names = _option_names(ck, node)
    if names is None:
        field_name = _dataclass_field_name(ck, node)
        names = [field_name] if field_name else []
        kind = f"field '{field_name}'"
    else:
        kind = f"option '{ck.src(node.args[0]).strip(chr(34) + chr(39))}'" if node.args else "option"
    if not any(is_device_like_name(n) for n in names):
        return
    lit = ck.device_literal(default.value)
    if lit is None:
        return
    ck.claim(default.value)
    dev_type, plain = lit
    fix, why = _fallback(ck, default.value, dev_type, plain, "default built at run time; check availability by hand")
    ck.report("DEV004", default.value, f"accelerator device {ck.src(default.value)} as the default of {kind}; "
                                       "the script fails where it is missing: check availability", fix, why)


# ---- a device string chosen by a test that is not an availability check ---------------------------

# a test that names the accelerator or a device is the user's choice (a flag, a label), not a blind pick
_CHOICE_WORDS = ("gpu", "cuda", "device", "accel", "mps", "xpu", "npu", "hpu")
_CPU_FLAGS = frozenset({"cpu", "use_cpu", "force_cpu", "on_cpu", "only_cpu", "cpu_only", "no_gpu"})


def _names_a_choice(test: ast.AST) -> bool:
    for n in ast.walk(test):
        word = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else \
            n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None
        if word is None:
            continue
        low = word.lower()
        if low in _CPU_FLAGS or any(w in low for w in _CHOICE_WORDS):
            return True
    return False


def _blind_branch(ck, value: ast.AST):
    """``"cuda" if cpu_group is None else "cpu"``: ``(branch, dev_type)`` for the accelerator branch of a
    conditional whose test neither checks availability nor names a device choice, else None."""
    if not isinstance(value, ast.IfExp) or ck.guard_polarity(value.test) != 0 or _names_a_choice(value.test):
        return None
    body, orelse = ck.device_literal(value.body), ck.device_literal(value.orelse)
    if (body is None) == (orelse is None):
        return None  # both accelerators (reported as a literal) or neither
    branch, lit = (value.body, body) if body is not None else (value.orelse, orelse)
    if isinstance(branch, ast.IfExp):
        return None
    return branch, lit[0]


def _report_blind(ck, value: ast.IfExp, branch: ast.AST, dev_type: str, where: str) -> None:
    ck.claim(value)
    expr = ck.availability_expr(branch, dev_type)
    if expr is None:
        fix, why = None, f"no availability check known for {dev_type!r}"
    else:
        fix, why = Fix((ReplaceNode(Span.of(branch), f"({expr})"),), True,
                       f"the {dev_type} branch falls back to the CPU when no {dev_type} device is available; "
                       "the test still chooses between the branches"), None
    ck.report("DEV004", branch, f"accelerator device {ck.src(branch)} chosen by `{ck.src(value.test)}`, "
                                f"which does not check that it is available; {where}", fix, why)


@DEV004.on("assign", skip_guarded=True)
def check_blind_assign(ck, node) -> None:
    """``device = "cuda" if cpu_group is None else "cpu"``: CUDA whether or not it exists."""
    if node.value is None or ck.claimed(node.value):
        return
    found = _blind_branch(ck, node.value)
    if found is None:
        return
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
    if not any(is_device_like_name(n) for n in names):
        return
    _report_blind(ck, node.value, *found, f"assigned to {', '.join(ck.src(t) for t in targets)}")


@DEV004.on("call.keywords", skip_guarded=True)
def check_blind_keyword(ck, node: ast.Call) -> None:
    """``x.to(device="cuda" if rank == 0 else "cpu")``, ``load(f, map_location="cuda" if a else "cpu")``."""
    for k in node.keywords:
        if k.arg is None or not (k.arg == "device" or is_device_like_name(k.arg)) or ck.claimed(k.value):
            continue
        found = _blind_branch(ck, k.value)
        if found is not None:
            _report_blind(ck, k.value, *found, f"passed as {k.arg}=")
