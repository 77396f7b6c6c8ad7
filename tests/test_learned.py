"""Learned-optimizer pieces: features by hand in float64, LogAndSign edges, the fused cell's gradients."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from l2o.features import BUILTIN as FEATURES, FeatureExtractor
from l2o import machine
from l2o.learned import CoordinateLSTM, log_and_sign, lstm_config, native
from l2o.learned.cell import elu_linear, lstm_cell, reference_lstm_cell

D = torch.float64


def test_features_match_hand_computation():
    gs = [torch.tensor([0.5, -2.0, 1e-3], dtype=D), torch.tensor([-0.25, 1.0, 0.0], dtype=D),
          torch.tensor([1.5, 3.0, -1e-3], dtype=D)]
    ex = FeatureExtractor(FEATURES, beta=0.95, eps=1e-8)
    state = ex.init(gs[0])
    for t, g in enumerate(gs, start=1):
        feats, state = ex.update(g, state)
    b, eps = 0.95, 1e-8
    for j in range(3):
        seq = [float(g[j]) for g in gs]
        m = v = 0.0
        e = {0.5: 0.0, 0.9: 0.0, 0.99: 0.0}
        vp = {2.0: 0.0, 2.5: 0.0, 3.0: 0.0}
        u = {0.9: 0.0, 0.98: 0.0, 0.995: 0.0}
        for k, x in enumerate(seq, start=1):
            m, v = b * m + (1 - b) * x, b * v + (1 - b) * x * x
            e = {d: d * val + (1 - d) * x for d, val in e.items()}
            vp = {p: b * val + (1 - b) * abs(x) ** p for p, val in vp.items()}
            mt = (m / (1 - b ** k)) / (math.sqrt(v / (1 - b ** k)) + eps)
            u = {d: d * val + (1 - d) * mt for d, val in u.items()}
        corr = 1 - b ** 3
        mhat, root = m / corr, math.sqrt(v / corr)
        expected = {"mt": mhat / (root + eps), "gt": seq[-1] / (root + eps), "g": seq[-1], "m": m, "mhat": mhat,
                    "sqrt_vhat": root, "g_ema50": e[0.5], "g_ema90": e[0.9], "g_ema99": e[0.99], "step": 0.003,
                    "mt_ema90": u[0.9], "mt_ema98": u[0.98], "mt_ema995": u[0.995],
                    **{f"m_p{s}": mhat / ((vp[p] / corr) ** (1 / p) + eps) for s, p in (("2", 2.0), ("25", 2.5), ("3", 3.0))}}
        for i, name in enumerate(FEATURES):
            assert feats[i, j].item() == pytest.approx(expected[name], rel=1e-12, abs=1e-15), name
    assert torch.allclose(feats[FEATURES.index("m_p2")], feats[FEATURES.index("mt")])


def test_feature_extractor_keeps_only_needed_state():
    ex = FeatureExtractor(("g", "step"))
    assert ex.init(torch.zeros(4)).moments == {}
    assert set(FeatureExtractor(("mt", "g_ema90")).init(torch.zeros(4)).moments) == {"m", "v", "g_ema90"}
    with pytest.raises(ValueError, match="unknown feature"):
        FeatureExtractor(("mt", "adam"))


def test_log_and_sign_edges():
    g = torch.tensor([0.0, 1e-30, -1e-30, 1e10, -1e10, -0.5], dtype=D)
    out = log_and_sign(g)
    assert torch.isfinite(out).all()
    assert out[0].tolist()[:3] == [-1.0, -1.0, -1.0]  # log|g|/5 clamps at -1 for 0 and tiny inputs
    assert out[0, 3].item() == pytest.approx(math.log(1e10) / 5)  # huge: unclamped above
    assert out[1].tolist() == pytest.approx([0.0, 1e-30 * math.e ** 5, -1e-30 * math.e ** 5, 1.0, -1.0, -1.0])
    assert out[0, 5].item() == pytest.approx(math.log(0.5) / 5)


def test_fused_cell_matches_reference_and_passes_gradcheck():
    torch.manual_seed(0)
    x, h, c = (torch.randn(k, 7, dtype=D, requires_grad=True) for k in (3, 4, 4))
    w = torch.randn(16, 7, dtype=D, requires_grad=True)
    b = torch.randn(16, dtype=D, requires_grad=True)
    for a, r in zip(lstm_cell(x, h, c, w, b), reference_lstm_cell(x, h, c, w, b)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lstm_cell, (x, h, c, w, b))
    # Only h' used downstream (dc is None) and only c' used (dh is None):
    assert torch.autograd.gradcheck(lambda *a: lstm_cell(*a)[0], (x, h, c, w, b))
    assert torch.autograd.gradcheck(lambda *a: lstm_cell(*a)[1], (x, h, c, w, b))


@pytest.mark.parametrize("model, inputs", [("dm", 2), ("rp", 2), ("rp_si", 3)])
def test_models_step_over_a_flat_vector(model, inputs):
    l2o = CoordinateLSTM(lstm_config(model))
    g = torch.randn(50)
    state = l2o.init_state(g)
    update, state = l2o.step(g, state)
    assert update.shape == (50,) and state.hidden[0].shape == (20, 50) and state.features.step == 1
    if model != "dm":
        assert l2o.pre.in_features == inputs and update.abs().max() <= 0.01  # tanh · 0.01
    assert l2o.state_floats_per_coordinate() >= 80


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        lstm_config("lstm3")
    with pytest.raises(ValueError, match="log_and_sign"):
        CoordinateLSTM(lstm_config("dm", features=("mt",)))
    assert lstm_config("rp", hidden=[40]).hidden == (40,)


@pytest.fixture
def torch_threads():
    """Sets torch's thread count for one test (the native cell picks its fused kernels on one thread)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl, threads", [("native", 1), ("torch", 1)])
def test_both_cell_paths_match_the_reference(impl, threads, torch_threads):
    from l2o.learned import native

    if impl == "native" and native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built (the torch path is tested)")
    torch_threads(threads)
    torch.manual_seed(0)
    # 33 coordinates: a full block of the fused kernels (24 in float64) and a short one; 4 hidden units
    # (two tiles of gates), 7 input rows (tiles of 4 and single rows in the backward products).
    x, h, c = (torch.randn(k, 33, dtype=D, requires_grad=True) for k in (3, 4, 4))
    w = torch.randn(16, 7, dtype=D, requires_grad=True)
    b = torch.randn(16, dtype=D, requires_grad=True)
    cell = lambda *a: lstm_cell(*a, impl=impl)  # noqa: E731
    for a, r in zip(cell(x, h, c, w, b), reference_lstm_cell(x, h, c, w, b)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(cell, (x, h, c, w, b))
    assert torch.autograd.gradcheck(lambda *a: cell(*a)[0], (x, h, c, w, b))
    assert torch.autograd.gradcheck(lambda *a: cell(*a)[1], (x, h, c, w, b))
    pw, pb = torch.randn(5, 3, dtype=D, requires_grad=True), torch.randn(5, dtype=D, requires_grad=True)
    elu = lambda *a: elu_linear(*a, impl=impl)  # noqa: E731
    torch.testing.assert_close(elu(x, pw, pb), torch.nn.functional.elu(pw @ x + pb[:, None]), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(elu, (x, pw, pb))


@pytest.mark.parametrize("inputs, hidden, n", [(20, 20, 100), (2, 5, 7), (7, 3, 49), (1, 1, 24)])
def test_fused_cell_at_other_sizes(inputs, hidden, n, torch_threads):
    """The fused kernels' edge cases: an odd hidden size (a tile of one unit's gates), fewer coordinates
    than a block, input counts that leave single rows, against plain autograd in float64."""
    from l2o.learned import native

    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built")
    torch_threads(1)
    torch.manual_seed(1)
    x, h, c = (torch.randn(k, n, dtype=D, requires_grad=True) for k in (inputs, hidden, hidden))
    w = torch.randn(4 * hidden, inputs + hidden, dtype=D, requires_grad=True)
    b = torch.randn(4 * hidden, dtype=D, requires_grad=True)
    out, ref = lstm_cell(x, h, c, w, b, impl="native"), reference_lstm_cell(x, h, c, w, b)
    with torch.no_grad():  # no activations kept: the same numbers from the kernel's other branch
        inference = lstm_cell(x, h, c, w, b, impl="native")
    for a, r, i in zip(out, ref, inference):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
        assert torch.equal(a.detach(), i)
    dh, dc = torch.randn(hidden, n, dtype=D), torch.randn(hidden, n, dtype=D)
    got = torch.autograd.grad((out[0] * dh).sum() + (out[1] * dc).sum(), (x, h, c, w, b))
    want = torch.autograd.grad((ref[0] * dh).sum() + (ref[1] * dc).sum(), (x, h, c, w, b))
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads, n", [(2, 100), (3, 200)])
def test_fused_cell_splits_coordinates_across_threads(threads, n, torch_threads, monkeypatch):
    """With several torch threads each takes a run of coordinate blocks (uneven ones here) and keeps
    its own weight-gradient partial sums; the result is the one-thread result."""
    from l2o.learned import cell, native

    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built")
    monkeypatch.setattr(cell, "MIN_COLUMNS_PER_THREAD", 16)
    torch.manual_seed(2)
    x, h, c = (torch.randn(k, n, dtype=D, requires_grad=True) for k in (3, 4, 4))
    w = torch.randn(16, 7, dtype=D, requires_grad=True)
    b = torch.randn(16, dtype=D, requires_grad=True)
    dh, dc = torch.randn(4, n, dtype=D), torch.randn(4, n, dtype=D)
    results = {}
    for t in (1, threads):
        torch_threads(t)
        out = lstm_cell(x, h, c, w, b, impl="native")
        grads = torch.autograd.grad((out[0] * dh).sum() + (out[1] * dc).sum(), (x, h, c, w, b))
        results[t] = [o.detach() for o in out], grads
    (out1, g1), (outn, gn) = results[1], results[threads]
    for a, r in zip(out1 + list(g1[:3]), outn + list(gn[:3])):
        assert torch.equal(a, r)  # coordinate by coordinate: the same arithmetic
    for a, r in zip(g1[3:], gn[3:]):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)  # sums over coordinates, in other order


@pytest.mark.parametrize("threads", [1, 2])
def test_native_float32_agrees_with_torch_path(threads, torch_threads):
    from l2o.learned import native

    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built")
    torch_threads(threads)
    l2o = CoordinateLSTM(lstm_config("rp"))
    g, weights = torch.randn(1000) * 1e-3, torch.randn(1000)
    outs, grads = {}, {}
    for impl in ("native", "torch"):
        l2o.impl = impl
        state = l2o.init_state(g)
        for _ in range(5):
            update, state = l2o.step(g, state)
        outs[impl] = update
        grads[impl] = torch.autograd.grad((update * weights).sum(), list(l2o.parameters()))
    torch.testing.assert_close(outs["native"], outs["torch"], rtol=1e-4, atol=1e-7)
    for a, b in zip(grads["native"], grads["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def test_native_float_exp_keeps_its_bound():
    """The float kernels' inline exp, through the same vectorised loop, against float64: relative error
    within EXPF_MAX_ERROR on [-87, 88] (a dense grid, the reduction's edges at ±ln 2 / 2 included), the
    clamp's ends beyond it, NaN kept."""
    import ctypes

    from l2o.learned import native

    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built")
    half = math.log(2) / 2
    edges = torch.tensor([k * 2 * half + s * half for k in range(-125, 127) for s in (-1, 1)])
    x = torch.cat([torch.linspace(-87, 88, 2_000_001), torch.linspace(-2, 2, 400_001), edges.float(),
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 100.0, -100.0])
    x = torch.cat([x, special])
    y = torch.empty_like(x)
    native.kernels().l2o_expf_array(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()),
                                    ctypes.c_long(x.numel()))
    n = x.numel() - special.numel()
    rel = (y[:n].double() / x[:n].double().exp() - 1).abs().max().item()
    assert rel <= native.EXPF_MAX_ERROR, rel
    tail = y[n:]
    assert torch.isnan(tail[0])
    assert tail[1] == tail[3] == y.new_tensor(88.0).double().exp().float()  # +inf and 100: e^88
    assert tail[2] == tail[4] and 0 < tail[2].item() < 2e-38  # -inf and -100: e^-87


def test_native_cflags_come_from_the_environment_and_a_bad_flag_falls_back(monkeypatch, tmp_path):
    """L2O_NATIVE_CFLAGS goes after the kernels' flags and into the cache key; a flag the compiler
    refuses leaves the caller on its torch path (build returns None) and caches nothing; text that is not
    a list of flags (an open quote) is refused with the variable's name."""
    import shutil

    from l2o.learned import native

    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here")
    monkeypatch.setenv("L2O_CACHE", str(tmp_path))
    source = "int l2o_answer(void) { return ANSWER; }\n"
    monkeypatch.setenv("L2O_NATIVE_CFLAGS", "-DANSWER=41")
    assert native.cflags()[-1] == "-DANSWER=41" and native.cflags()[:-1] == native.FLAGS
    assert native.build(source, "answer").l2o_answer() == 41
    monkeypatch.setenv("L2O_NATIVE_CFLAGS", "-DANSWER=42")
    assert native.build(source, "answer").l2o_answer() == 42  # a new key: built again, not the cached 41
    monkeypatch.setenv("L2O_NATIVE_CFLAGS", "-DANSWER=43 -fno-such-flag-l2o")
    assert native.build(source, "answer") is None
    assert len(list((tmp_path / "native").glob("answer-*.so"))) == 2
    monkeypatch.setenv("L2O_NATIVE_CFLAGS", "-DANSWER='4")
    with pytest.raises(ValueError, match="L2O_NATIVE_CFLAGS"):
        native.build(source, "answer")


@pytest.mark.parametrize("threads", [1, 2])
def test_nan_propagates_through_the_native_cell(threads, torch_threads):
    torch_threads(threads)
    l2o = CoordinateLSTM(lstm_config("rp"))
    g = torch.randn(10)
    g[3] = float("nan")
    update, _ = l2o.step(g, l2o.init_state(g))
    assert torch.isnan(update[3]) and torch.isfinite(update[torch.arange(10) != 3]).all()


def test_keep_freed_memory_stops_the_page_faults_of_the_next_window():
    """A window's allocations as the native cell makes them (per step 10 MB of activations and two
    2 MB states, 40 steps, then all freed): glibc's defaults hand the memory back and every round
    faults its pages in again; with the trainer's setting the next rounds reuse them. In a process of
    its own: the setting is process-wide."""
    if __import__("platform").libc_ver()[0] != "glibc":
        pytest.skip("the setting is glibc's")
    probe = textwrap.dedent("""
        import resource, sys, torch
        from l2o import machine
        if sys.argv[1] == "keep":
            assert machine.keep_freed_memory(1024 * 2**20)
        faults = []
        for _ in range(3):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            kept = []
            for _ in range(40):
                kept += [torch.ones(2_500_000), torch.ones(500_000), torch.ones(500_000)]
            while kept:
                kept.pop()
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        print(faults[0], max(faults[1:]))
    """)

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True)
        first, later = out.stdout.split()[-2:]
        return int(first), int(later)

    first, later = faults("keep")
    assert first > 50_000  # 136,000 pages of 4 KiB touched in the first round
    assert later < 5_000
    assert not machine.keep_freed_memory(0)
