"""The step program of a rule (``RulePlan.program``) rendered as C, as torch source for one tensor, or as
torch source over flat buffers.

``render_c`` is the loop body of the native kernel, ``render_torch`` the body of an exported optimizer's
step, ``render_flat`` the function the compile path hands to ``torch.compile``. All three print the same
statements — the registry's maths, bound to one plan — through sympy's C printer or ``torch_code`` (which
spells the heads of the one ``TORCH_OPS`` table), so they stay one program.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.codegen.ast import float32, float64, real

from l2o import machine
from l2o.expr.torch_ops import torch_code
from l2o.features.plan import C0, C1, Let, Load, MomentUpdate, Read, Rule, RulePlan, Update, Write

# In C the bias corrections are divided by once per call: the loop multiplies by their reciprocals.
_IC = {C1: 1 / sp.Symbol("ic1", real=True), C0: 1 / sp.Symbol("ic0", real=True)}


def _renamed(expr: sp.Expr) -> sp.Expr:
    """The rule over the program's variable names (``mt_0`` → ``x_mt_0``)."""
    return expr.xreplace({s: sp.Symbol(f"x_{s}", real=True) for s in expr.free_symbols})


def _lerp(st: MomentUpdate) -> sp.Expr:
    o = sp.Symbol(f"o_{st.key}", real=True)
    return o + (1 - st.decay) * (st.input - o)


def _emit(plan: RulePlan, emitters: dict) -> list[str]:
    """The program's lines: each statement through the emitter of its kind (one line or a list)."""
    lines: list[str] = []
    for st in plan.program:
        out = emitters[type(st)](st)
        lines += [out] if isinstance(out, str) else out
    return lines


def _shared_reciprocals(plan: RulePlan) -> dict[sp.Expr, sp.Symbol]:
    """Denominators that more than one feature statement divides by (√v̂ + ε for mt and gt), each to be
    divided by once: a vector division costs several multiplications on the CPUs measured. The rule,
    which runs in the other half of the pipelined loop, divides on its own."""
    exprs = [st.expr for st in plan.program if isinstance(st, (Let, Write))]
    exprs += [st.input for st in plan.program if isinstance(st, MomentUpdate)]
    seen: dict[sp.Expr, int] = {}
    for e in exprs:
        for sub in e.xreplace(_IC).atoms(sp.Pow):
            if sub.exp == -1 and not sub.base.is_number:
                seen[sub.base] = seen.get(sub.base, 0) + 1
    return {base: sp.Symbol(f"r_{k}", real=True) for k, base in enumerate(b for b, n in seen.items() if n > 1)}


def block_size(ctype: str, buffers: int) -> int:
    """Coordinates per block of the pipelined loop: the feature buffers of two blocks (the one being
    written and the one the rule reads) take at most a quarter of the L1 data cache the OS reports."""
    size = 4 if ctype == "float" else 8
    l1 = machine.caches().get("L1d", 32768)
    fit = l1 // (4 * 2 * max(buffers, 1) * size)
    return max(16, min(256, 1 << max(fit.bit_length() - 1, 0)))


def render_c(plan: RulePlan, expr: sp.Expr, ctype: str, tanh: str | None = None) -> str:
    """``void rule_<f32|f64>(long n, void **ptrs, const double *sc)``; see ``native_rule`` for the ABI.
    ``tanh``: the C function that computes tanh (default: the C library's).

    The loop is software-pipelined over blocks of ``block_size`` coordinates: one pass computes the
    features of block b (state update, square roots and divisions) into small buffers while it applies
    the rule of block b − 1 from the other buffers. The two halves do not depend on each other, so the
    CPU overlaps the long latency chain of the features with the rule's arithmetic."""
    T = ctype
    aliases = {real: float32 if ctype == "float" else float64}
    shared = _shared_reciprocals(plan)
    defined: dict[str, str] = {}  # reciprocal → its definition, placed before the first line that reads it

    def code(e: sp.Expr, share: bool = True) -> str:
        e = e.xreplace(_IC)
        if share:
            e = e.xreplace({base ** -1: r for base, r in shared.items()})
        text = sp.ccode(e, type_aliases=aliases, user_functions={"tanh": tanh} if tanh else {})
        for base, r in shared.items():
            if share and r in e.free_symbols and str(r) not in defined:
                defined[str(r)] = f"{T} {r} = 1 / ({sp.ccode(base, type_aliases=aliases)});"
        return text

    args = ["P", "G"]
    slots: dict[str, list[str]] = {f: [] for f in plan.history}  # per buffered feature: its read slots

    def load(st):
        args.append(f"S_{st.key}")
        return f"{T} o_{st.key} = S_{st.key}[i];"

    def read(st):
        slots[st.feature].append(f"H_{st.feature}_{st.lag}")
        return f"{T} {st.var} = H_{st.feature}_{st.lag}[i];"

    rule = _renamed(expr)
    scalar = plan.scalar_vars()
    lets = {st.var: st for st in plan.program if isinstance(st, Let)}
    inputs = sorted(str(s) for s in rule.free_symbols)
    buffered = [v for v in inputs if v not in scalar]
    body = [f"{T} k_g = G[i];", *_emit(plan, {
        Load: load, Read: read,
        Let: lambda st: f"{T} {st.var} = {code(st.expr)};",
        MomentUpdate: lambda st: [f"{T} n_{st.key} = {code(_lerp(st))};", f"S_{st.key}[i] = n_{st.key};"],
        Rule: lambda st: [],
        Write: lambda st: f"W_{st.feature}[i] = {code(st.expr)};",
        Update: lambda st: []})]
    for name, line in defined.items():
        first = next(k for k, text in enumerate(body) if re.search(rf"\b{name}\b", text))
        body.insert(first, line)
    features = body + [f"BW_{v}[l] = {v};" for v in buffered]
    update = [*(f"{T} {v} = BR_{v}[l];" for v in buffered),
              *(f"{T} {v} = {code(lets[v].expr, share=False)};" for v in inputs if v in scalar),
              f"{T} k_u = {code(rule, share=False)};", "P[ir] += lr * k_u;"]
    # Read slots are passed per feature, then its write slot; slots may alias (the write slot is the
    # oldest one read), so they are not restrict.
    ordered = [name for f in plan.history for name in [*slots[f], f"W_{f}"]]
    unpack = "; ".join([f"{T} *restrict {n} = ({T} *)ptrs[{k}]" for k, n in enumerate(args)]
                       + [f"{T} *{n} = ({T} *)ptrs[{len(args) + k}]" for k, n in enumerate(ordered)])
    suffix = "f32" if ctype == "float" else "f64"
    B = block_size(ctype, len(buffered))

    def loop(count: str, index: str, lines: list[str], pad: str = "        ") -> str:
        inner = pad + "    "
        return (f"{pad}_Pragma(\"omp simd\")\n{pad}for (long l = 0; l < {count}; ++l) {{\n{inner}const long {index};\n"
                + "".join(f"{inner}{line}\n" for line in lines) + f"{pad}}}\n")

    nested = ["{  /* the rule: its inputs shadow the features' */", *("    " + line for line in update), "}"]
    buffers = "".join(f"    {T} A_{v}[2][{B}] __attribute__((aligned(64)));\n" for v in buffered)
    # not restrict: the last block's rule reads the buffer its features wrote (omp simd vectorises anyway)
    pointers = "".join(f"        {T} *BW_{v} = A_{v}[k];\n        const {T} *BR_{v} = A_{v}[k ^ 1];\n" for v in buffered)
    last = "".join(f"            BR_{v} = BW_{v};\n" for v in buffered)
    return (f"void rule_{suffix}(long n, void **ptrs, const double *sc) {{\n"
            f"    {unpack};\n"
            f"    const {T} lr = ({T})sc[0], ic1 = ({T})(1 / sc[1]), ic0 = ({T})(1 / sc[2]), t = ({T})sc[3];\n"
            f"    (void)ic0; (void)ic1; (void)t;\n{buffers}"
            f"    for (long j0 = 0, k = 0; ; j0 += {B}, k ^= 1) {{\n"
            f"        const long m = n - j0 >= {B} ? {B} : (n > j0 ? n - j0 : 0);\n{pointers}"
            f"        if (j0 > 0 && m == {B}) {{  /* features of this block, the rule of the one before */\n"
            + loop(str(B), f"i = j0 + l, ir = i - {B}", features + nested, "            ")
            + "            continue;\n        }\n"
            + loop("m", "i = j0 + l", features)
            + "        if (j0 > 0) {\n" + loop(str(B), f"ir = j0 - {B} + l", nested, "            ") + "        }\n"
            + f"        if (m < {B}) {{  /* the last block: its own rule */\n{last}"
            + loop("m", "ir = j0 + l", nested, "            ")
            + "            break;\n        }\n    }\n}\n")


def render_torch(plan: RulePlan, expr: sp.Expr, indent: str) -> str:
    """Statements for one tensor: ``p``, ``g``, ``state``, ``lr`` and the numbers ``t``, ``c1``, ``c0`` in
    scope (the source needs ``import math``)."""
    scalars = plan.scalar_vars()
    code = lambda e: torch_code(e, name=str, scalars=scalars)  # noqa: E731

    def write(st):
        first, depth = plan.history[st.feature]
        return f"state['hist_{st.feature}'][(t - {first} + 1) % {depth}] = {code(st.expr)}"

    lines = ["k_g = g", *_emit(plan, {
        Load: lambda st: f"o_{st.key} = state[{st.key!r}]",
        Let: lambda st: f"{st.var} = {code(st.expr)}",
        MomentUpdate: lambda st: (f"state[{st.key!r}] = n_{st.key} = torch.lerp(o_{st.key}, {code(st.input)}, "
                                  f"{float(1 - st.decay)!r})"),
        Read: lambda st: f"{st.var} = state['hist_{st.feature}'][(t - {st.lag}) % {plan.history[st.feature][1]}]",
        Rule: lambda st: f"{st.var} = {code(_renamed(expr))}",
        Write: write,
        Update: lambda st: f"p.add_({st.var}, alpha=lr)"})]
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
    code = lambda e: torch_code(e, name=str)  # noqa: E731 — every scalar is a 0-d tensor here
    b = plan.beta
    stores = []

    def moment(st):
        stores.append(f"S_{st.key}.copy_(n_{st.key})")
        return f"n_{st.key} = {code(_lerp(st))}"

    def write(st):
        # A bare copy of one input into another is moved after the first input's own update by
        # inductor (seen in torch 2.11 and 2.14); an arithmetic identity keeps the order.
        value = code(st.expr)
        value = f"{value} * 1.0" if value.isidentifier() else value
        return f"H_{st.feature}_{plan.lags[st.feature][-1]}.copy_({value})"

    lines = [f"c1 = 1.0 - {b!r} ** t", f"c0 = torch.where(t > 1.0, 1.0 - {b!r} ** (t - 1.0), 1.0)", *_emit(plan, {
        Load: lambda st: f"o_{st.key} = S_{st.key}",
        Let: lambda st: f"{st.var} = {code(st.expr)}",
        MomentUpdate: moment,
        Read: lambda st: f"{st.var} = H_{st.feature}_{st.lag}",
        Rule: lambda st: f"{st.var} = {code(_renamed(expr))}",
        Write: write,
        Update: lambda st: [*stores, f"k_g.copy_(torch.broadcast_to({st.var}, k_g.shape))"]})]
    args = ", ".join(["k_g", "t", *flat_arguments(plan)])
    return f"def rule_flat({args}):\n" + "".join(f"    {line}\n" for line in lines)


def flat_arguments(plan: RulePlan) -> list[str]:
    """The state arguments of ``render_flat``'s function: moments, then one row per buffered lag."""
    return [f"S_{key}" for key in plan.moment_keys] + [f"H_{f}_{lag}" for f, lag in plan.buffered_reads]
