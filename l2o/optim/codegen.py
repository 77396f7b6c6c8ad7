"""One straight-line program per rule — state update, features, equation — rendered as C or as torch.

``program(plan)`` lists the statements of one step for one coordinate (C) or one tensor (torch):
load the gradient and the state, move the state, compute each ``<feature>_<lag>`` the rule reads, the
rule, the history writes, the parameter update. ``render_c`` turns it into the loop body of the native
kernel; ``render_torch`` into the body of an exported optimizer's step. Both name functions through a
small dialect, and the equation itself through sympy's C printer or ``torch_code`` (which spells the
heads of the one ``TORCH_OPS`` table), so the two stay the same program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp
import torch
from sympy.codegen.ast import float32, float64, real

from l2o.learned.features import EMA_DECAYS, MT_EMA_DECAYS, P_NORMS
from l2o.optim.rule import STATEFUL, RulePlan
from l2o.optim.sympy_torch import TORCH_OPS


@dataclass(frozen=True)
class Dialect:
    fn: Callable[[str], str]  # libm name → spelling ("sqrt" → "sqrtf" or "torch.sqrt")
    lit: Callable[[float], str]  # a number literal
    step: Callable[[int], str]  # the step feature at a lag (t is in scope)


def c_dialect(ctype: str) -> Dialect:
    suffix = "f" if ctype == "float" else ""
    lit = lambda x: f"{float(x)!r}{suffix}"  # noqa: E731
    return Dialect(lambda name: name + suffix, lit, lambda lag: f"fmax{suffix}(t - {lit(lag)}, {lit(0)}) / {lit(1000)}")


TORCH_DIALECT = Dialect(lambda name: {"fabs": "torch.abs"}.get(name, f"torch.{name}"), lambda x: repr(float(x)),
                        lambda lag: f"torch.full_like(k_g, max(t - {lag}, 0) / 1000.0)")


def program(plan: RulePlan, d: Dialect) -> list[tuple]:
    """Statements: ("grad", var) · ("load", key, var) · ("let", var, text) · ("store", key, var) ·
    ("hist", feature, lag, var) · ("rule", var) · ("write", feature, text) · ("update", var)."""
    b, eps, L, fn = plan.beta, plan.eps, d.lit, d.fn
    out: list[tuple] = [("grad", "k_g")]

    def feature(name: str, snap: str) -> str:  # snap "n": the new state (correction c1); "o": the old (c0)
        corr = "c1" if snap == "n" else "c0"
        if name == "g":
            return "k_g"
        if name in EMA_DECAYS or name in MT_EMA_DECAYS or name == "m":
            return f"{snap}_{name}"
        mhat = f"({snap}_m / {corr})"
        if name == "mhat":
            return mhat
        if name in P_NORMS:
            return f"({mhat} / ({fn('pow')}({snap}_v{name} / {corr}, {L(1 / P_NORMS[name])}) + {L(eps)}))"
        root = f"{fn('sqrt')}({snap}_v / {corr})"
        if name == "sqrt_vhat":
            return root
        return f"(({mhat if name == 'mt' else 'k_g'}) / ({root} + {L(eps)}))"

    mt_now = None  # the variable holding this step's mt, once the mt EMAs have needed it
    for key in plan.moment_keys:  # m and v come before the mt EMAs, which read their new values
        if key == "v":
            new = "k_g * k_g"
        elif key.startswith("vm_p"):
            new = f"{fn('pow')}({fn('fabs')}(k_g), {L(P_NORMS[key[1:]])})"
        elif key in MT_EMA_DECAYS:
            if mt_now is None:
                mt_now = "n_mt"
                out.append(("let", mt_now, feature("mt", "n")))
            new = mt_now
        else:
            new = "k_g"
        decay = EMA_DECAYS.get(key, MT_EMA_DECAYS.get(key, b))
        out += [("load", key, f"o_{key}"), ("let", f"n_{key}", f"o_{key} + {L(1 - decay)} * (({new}) - o_{key})"),
                ("store", key, f"n_{key}")]

    writes = []
    for feat, lags in plan.lags.items():
        for lag in lags:
            var = f"x_{feat}_{lag}"
            if feat == "step":
                out.append(("let", var, d.step(lag)))
            elif lag == 0:
                out.append(("let", var, mt_now if feat == "mt" and mt_now else feature(feat, "n")))
            elif lag == 1 and feat in STATEFUL:
                out.append(("let", var, feature(feat, "o")))
            else:
                out.append(("hist", feat, lag, var))
        if feat in plan.history:
            value = feature(feat, "o") if feat in STATEFUL else f"x_{feat}_0" if 0 in lags else feature(feat, "n")
            writes.append(("write", feat, value))
    return out + [("rule", "k_u"), *writes, ("update", "k_u")]


def _renamed(expr: sp.Expr) -> sp.Expr:
    return expr.xreplace({s: sp.Symbol(f"x_{s}") for s in expr.free_symbols})


def render_c(plan: RulePlan, expr: sp.Expr, ctype: str) -> str:
    """``void rule_<f32|f64>(long n, void **ptrs, const double *sc)``; see ``native_rule`` for the ABI."""
    T = ctype
    args, body = ["P", "G"], []
    slots: dict[str, list[str]] = {f: [] for f in plan.history}  # per buffered feature: its read slots
    for st in program(plan, c_dialect(ctype)):
        kind = st[0]
        if kind == "grad":
            body.append(f"{T} {st[1]} = G[i];")
        elif kind == "load":
            args.append(f"S_{st[1]}")
            body.append(f"{T} {st[2]} = S_{st[1]}[i];")
        elif kind == "let":
            body.append(f"{T} {st[1]} = {st[2]};")
        elif kind == "store":
            body.append(f"S_{st[1]}[i] = {st[2]};")
        elif kind == "hist":
            slots[st[1]].append(f"H_{st[1]}_{st[2]}")
            body.append(f"{T} {st[3]} = H_{st[1]}_{st[2]}[i];")
        elif kind == "rule":
            code = sp.ccode(_renamed(expr), type_aliases={real: float32 if ctype == "float" else float64})
            body.append(f"{T} {st[1]} = {code};")
        elif kind == "write":
            body.append(f"W_{st[1]}[i] = {st[2]};")
        else:
            body.append(f"P[i] += lr * {st[1]};")
    # Read slots are passed per feature, then its write slot; slots may alias (the write slot is the
    # oldest one read), so they are not restrict.
    ordered = [name for f in plan.history for name in [*slots[f], f"W_{f}"]]
    unpack = "; ".join([f"{T} *restrict {n} = ({T} *)ptrs[{k}]" for k, n in enumerate(args)]
                       + [f"{T} *{n} = ({T} *)ptrs[{len(args) + k}]" for k, n in enumerate(ordered)])
    suffix = "f32" if ctype == "float" else "f64"
    return (f"void rule_{suffix}(long n, void **ptrs, const double *sc) {{\n"
            f"    {unpack};\n"
            f"    const {T} lr = ({T})sc[0], c1 = ({T})sc[1], c0 = ({T})sc[2], t = ({T})sc[3];\n"
            f"    (void)c0; (void)c1; (void)t;\n"
            "    _Pragma(\"omp simd\")\n"
            "    for (long i = 0; i < n; ++i) {\n        " + "\n        ".join(body) + "\n    }\n}\n")


_INFIX = {sp.Add: " + ", sp.Mul: " * "}


def torch_code(expr: sp.Expr) -> str:
    """Python source of ``expr`` over tensors named like its symbols (prefixed ``x_``), spelling each head
    by the torch function ``TORCH_OPS`` maps it to."""
    def walk(node) -> str:
        if node.is_Symbol:
            return f"x_{node}"
        if node.is_Number:
            return repr(int(node)) if node.is_Integer else repr(float(node))
        args = [walk(a) for a in node.args]
        if type(node) in _INFIX:
            return "(" + _INFIX[type(node)].join(args) + ")"
        if isinstance(node, sp.Pow):
            e = node.exp
            if e == sp.Rational(1, 2):
                return f"torch.sqrt({args[0]})"
            if e == -1:
                return f"torch.reciprocal({args[0]})"
            return f"torch.pow({args[0]}, {args[1]})"
        if isinstance(node, (sp.Max, sp.Min)):
            name = "maximum" if isinstance(node, sp.Max) else "minimum"
            tensors = [a for a, n in zip(args, node.args) if not n.is_Number]
            code = tensors[0]
            for a in tensors[1:]:
                code = f"torch.{name}({code}, {a})"
            for a, n in zip(args, node.args):
                if n.is_Number:
                    code = f"torch.clamp({code}, {'min' if name == 'maximum' else 'max'}={a})"
            return code
        fn = TORCH_OPS.get(type(node))
        if fn is None or not hasattr(torch, getattr(fn, "__name__", "")):
            raise ValueError(f"no torch spelling for {type(node).__name__}")
        return f"torch.{fn.__name__}({', '.join(args)})"

    return walk(expr)


def render_torch(plan: RulePlan, expr: sp.Expr, indent: str) -> str:
    """Statements for one tensor: ``p``, ``g`` (as k_g), ``state``, ``lr``, ``t``, ``c1``, ``c0`` in scope."""
    lines = []
    for st in program(plan, TORCH_DIALECT):
        kind = st[0]
        if kind == "grad":
            lines.append(f"{st[1]} = g")
        elif kind == "load":
            lines.append(f"{st[2]} = state[{st[1]!r}]")
        elif kind == "let":
            lines.append(f"{st[1]} = {st[2]}")
        elif kind == "store":
            lines.append(f"state[{st[1]!r}] = {st[2]}")
        elif kind == "hist":
            depth = plan.history[st[1]][1]
            lines.append(f"{st[3]} = state['hist_{st[1]}'][(t - {st[2]}) % {depth}]")
        elif kind == "rule":
            lines.append(f"{st[1]} = {torch_code(expr)}")
        elif kind == "write":
            first, depth = plan.history[st[1]]
            lines.append(f"state['hist_{st[1]}'][(t - {first} + 1) % {depth}] = {st[2]}")
        else:
            lines.append(f"p.add_({st[1]}, alpha=lr)")
    return "\n".join(indent + line for line in lines)


def render_flat(plan: RulePlan, expr: sp.Expr) -> str:
    """Source of ``rule_flat(k_g, t, S_<key>..., H_<feature>_<lag>...)`` over flat tensors: the state
    moves in place and the update overwrites the gradient ``k_g`` (the caller adds ``lr·k_g`` to the
    parameters), so the path needs no buffer besides the one it gathers the gradients into.

    ``t`` is a 0-d tensor on the device, so one compiled graph serves every step; each buffered lag is
    passed as its own row of the ring buffer, and the new value goes into the row of the deepest lag,
    the one that falls out of the buffer. Every write comes after the rule and before the state's own
    update, so no value is read after it was overwritten (in eager mode too). The argument order is
    ``flat_arguments(plan)``."""
    d = Dialect(TORCH_DIALECT.fn, TORCH_DIALECT.lit, lambda lag: f"torch.clamp(t - {float(lag)!r}, min=0.0) / 1000.0")
    b = plan.beta
    lines = [f"c1 = 1.0 - {b!r} ** t", f"c0 = torch.where(t > 1.0, 1.0 - {b!r} ** (t - 1.0), 1.0)"]
    stores = []
    for st in program(plan, d):
        kind = st[0]
        if kind == "load":
            lines.append(f"{st[2]} = S_{st[1]}")
        elif kind == "let":
            lines.append(f"{st[1]} = {st[2]}")
        elif kind == "store":
            stores.append(f"S_{st[1]}.copy_({st[2]})")
        elif kind == "hist":
            lines.append(f"{st[3]} = H_{st[1]}_{st[2]}")
        elif kind == "rule":
            lines.append(f"{st[1]} = {torch_code(expr)}")
        elif kind == "write":
            # A bare copy of one input into another is moved after the first input's own update by
            # inductor (seen in torch 2.11 and 2.14); an arithmetic identity keeps the order.
            value = f"{st[2]} * 1.0" if st[2].isidentifier() else st[2]
            lines.append(f"H_{st[1]}_{plan.lags[st[1]][-1]}.copy_({value})")
        elif kind == "update":
            lines += [*stores, f"k_g.copy_(torch.broadcast_to({st[1]}, k_g.shape))"]
    args = ", ".join(["k_g", "t", *flat_arguments(plan)])
    return f"def rule_flat({args}):\n" + "".join(f"    {line}\n" for line in lines)


def flat_arguments(plan: RulePlan) -> list[str]:
    """The state arguments of ``render_flat``'s function: moments, then one row per buffered lag."""
    return [f"S_{key}" for key in plan.moment_keys] + [f"H_{f}_{lag}" for f, lag in plan.buffered_reads]
