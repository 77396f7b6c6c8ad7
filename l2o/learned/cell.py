"""A fused LSTM cell with a hand-written backward, for batches of millions of coordinates.

Autograd through a textbook cell spends most of its time outside the matrix products: gate slices
whose backward zero-fills full-size buffers, and ``tanh``, which on CPU runs about ten times slower
than ``sigmoid``. This cell computes the gates with one ``addmm`` of ``[x; h]``, applies one in-place
sigmoid to all four gates (using tanh(z) = 2σ(2z) − 1), saves the activations, and writes every gate
gradient into one buffer in ``backward``.

Layout is feature-major: x (in, N), h and c (hidden, N), weight (4·hidden, in + hidden) with gate rows
ordered [input, forget, output, cell], bias (4·hidden,). Every gate is then a contiguous block of rows,
so the elementwise work runs on contiguous memory (strided column slices are several times slower).

On CPU the cell runs as C kernels (``l2o.learned.native``) when they can be built: the whole step,
matrix products included, is one kernel per direction that works through the coordinates in
cache-sized blocks, shared among torch's threads. The torch path below is the same maths and serves
GPUs and machines without a C compiler. Both are checked against ``reference_lstm_cell`` (plain
autograd) in float64 by the tests.
"""

from __future__ import annotations

import torch

from l2o.learned import native


def _tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class _LSTMCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h, c, w, b):
        size = h.shape[0]
        xh = torch.cat([x, h], 0)
        act = torch.addmm(b[:, None], w, xh)
        act[3 * size:].mul_(2)
        act.sigmoid_()
        act[3 * size:].mul_(2).sub_(1)  # tanh of the cell-gate pre-activation
        i, f, o, g = act.split(size, 0)
        c_new = torch.addcmul(f * c, i, g)
        tc = _tanh(c_new)
        h_new = o * tc
        ctx.save_for_backward(xh, act, c, tc, w)
        return h_new, c_new

    @staticmethod
    def backward(ctx, dh, dc):
        xh, act, c, tc, w = ctx.saved_tensors
        size = c.shape[0]
        i, f, o, g = act.split(size, 0)
        if dh is None:
            dh = torch.zeros_like(c)
        dtc = dh * o
        dc_total = dtc - dtc * tc * tc  # dh·o·(1 − tanh²c)
        if dc is not None:
            dc_total += dc
        dgates = torch.empty_like(act)
        di, df, do, dg = dgates.split(size, 0)
        torch.mul(dc_total * g, i - i * i, out=di)
        torch.mul(dc_total * c, f - f * f, out=df)
        torch.mul(dh * tc, o - o * o, out=do)
        torch.mul(dc_total * i, 1 - g * g, out=dg)
        dxh = w.T @ dgates
        dw = dgates @ xh.T if ctx.needs_input_grad[3] else None
        db = dgates.sum(1) if ctx.needs_input_grad[4] else None
        dx, dh_prev = dxh.split([xh.shape[0] - size, size], 0)
        return dx, dh_prev, dc_total * f, dw, db


class _NativeLSTMCell(torch.autograd.Function):
    # Saves only what no other node keeps: the activations (with tanh of the new cell state); x, h and c
    # are references to tensors that exist anyway, and [x; h] is read again in backward rather than kept.
    @staticmethod
    def forward(ctx, x, h, c, w, b):  # contiguous inputs (lstm_cell sees to it)
        h_new, c_new, act = _native_forward(x, h, c, w, b, keep=True)
        ctx.save_for_backward(x, h, c, act, w)
        return h_new, c_new

    @staticmethod
    def backward(ctx, dh, dc):
        x, h, c, act, w = ctx.saved_tensors
        size, n = c.shape
        dx, dh_prev, dc_prev = torch.empty_like(x), torch.empty_like(h), torch.empty_like(c)
        dw = torch.empty_like(w) if ctx.needs_input_grad[3] else None
        db = torch.empty(w.shape[0], dtype=w.dtype) if ctx.needs_input_grad[4] else None
        if native.call("lstm_fused_backward", act.dtype, x, h, c, act, w,
                       None if dh is None else dh.contiguous(), None if dc is None else dc.contiguous(),
                       dx, dh_prev, dc_prev, dw, db, x.shape[0], size, n, _threads(n)):
            raise MemoryError("lstm_fused_backward: out of memory for its block buffers")
        return dx, dh_prev, dc_prev, dw, db


MIN_COLUMNS_PER_THREAD = 4096  # fewer coordinates per torch thread than this run on fewer threads


def _threads(n: int) -> int:
    return max(1, min(torch.get_num_threads(), n // MIN_COLUMNS_PER_THREAD))


def _native_forward(x, h, c, w, b, keep: bool):
    """(h', c', activations) by the fused C kernel; without ``keep`` the kernel does not write the
    activations (nothing will differentiate through them) and the third value is None."""
    size, n = h.shape
    c_new, h_new = torch.empty_like(c), torch.empty_like(c)
    # kept for the kernel's backward alone, laid out by blocks of coordinates (see native_cell.c)
    act = torch.empty(native.call("lstm_act_length", c.dtype, size, n), dtype=c.dtype) if keep else None
    if native.call("lstm_fused_forward", c.dtype, x, h, c, w, b, act, c_new, h_new, x.shape[0], size, n,
                   _threads(n)):
        raise MemoryError("lstm_fused_forward: out of memory for its block buffers")
    return h_new, c_new, act


class _NativeEluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        x, w, b = x.contiguous(), w.contiguous(), b.contiguous()
        z = torch.empty(w.shape[0], x.shape[1], dtype=x.dtype)
        native.call("elu_linear_forward", x.dtype, w, b, x, z, w.shape[0], w.shape[1], x.shape[1])
        ctx.save_for_backward(x, w, z)
        return z

    @staticmethod
    def backward(ctx, dz):
        x, w, z = ctx.saved_tensors
        d = dz.contiguous().clone()
        native.call("elu_backward", d.dtype, z, d, d.numel())
        dx = w.T @ d if ctx.needs_input_grad[0] else None
        return dx, d @ x.T, d.sum(1)


def _native(impl: str | None, *tensors: torch.Tensor) -> bool:
    if impl not in (None, "native", "torch"):
        raise ValueError(f"impl must be 'native', 'torch' or None (auto), got {impl!r}")
    if impl == "native" and not native.usable(*tensors):
        raise RuntimeError("native LSTM kernels are not available for these tensors (CPU float32/64 only)")
    return impl == "native" or (impl is None and native.usable(*tensors))


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
              impl: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step in feature-major layout (see the module docstring); returns (h', c').

    ``impl``: "native" (C kernels), "torch", or None to pick native where it is usable.
    """
    if not _native(impl, x, h, c, w, b):
        return _LSTMCell.apply(x, h, c, w, b)
    x, h, c, w, b = x.contiguous(), h.contiguous(), c.contiguous(), w.contiguous(), b.contiguous()
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, h, c, w, b)):
        return _NativeLSTMCell.apply(x, h, c, w, b)
    return _native_forward(x, h, c, w, b, keep=False)[:2]


def elu_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, impl: str | None = None) -> torch.Tensor:
    """ELU(w·x + b) for feature-major ``x`` (in, N), ``w`` (out, in), ``b`` (out,)."""
    if _native(impl, x, w, b):
        return _NativeEluLinear.apply(x, w, b)
    return torch.nn.functional.elu(torch.addmm(b[:, None], w, x))


def reference_lstm_cell(x, h, c, w, b):
    """The same cell written plainly, for tests."""
    size = h.shape[0]
    gates = w @ torch.cat([x, h], 0) + b[:, None]
    i, f, o = (torch.sigmoid(gates[k * size:(k + 1) * size]) for k in range(3))
    c_new = f * c + i * torch.tanh(gates[3 * size:])
    return o * torch.tanh(c_new), c_new
