"""The sanity table: its targets are the rules they claim to be, and −0.01·g is recovered exactly."""

import json

import numpy as np
import pytest
import torch

from l2o.cli import main
from l2o.distill.sanity import CASES, LAGS, features, gradient_windows, run_case

CASE = {c.name: c for c in CASES}


def test_targets_follow_their_recursions():
    G = gradient_windows(50, seed=3)
    m = np.zeros(50)
    for i in range(LAGS - 1, -1, -1):
        m = 0.6 * m + G[:, i]
    np.testing.assert_allclose(CASE["momentum06"].target(G), m, rtol=1e-12)
    np.testing.assert_allclose(CASE["linear_decay"].target(G), sum((1 - 0.1 * i) * G[:, i] for i in range(11)))


def test_adam_target_is_torch_adams_step_direction():
    G = gradient_windows(8, seed=1)
    p = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    for i in range(LAGS - 1, -1, -1):  # oldest lag first
        before = p.detach().clone()
        p.grad = torch.from_numpy(G[:, i].copy())
        opt.step()
    np.testing.assert_allclose(CASE["adam09"].target(G), (before - p.detach()).numpy(), rtol=1e-10)


def test_features_include_lags_and_window_summaries():
    G = gradient_windows(10)
    X, names = features(G)
    assert names[:2] == ["g_0", "g_1"] and X.shape == (10, LAGS + 5)
    np.testing.assert_allclose(X[:, names.index("g_rms")], np.sqrt((G ** 2).mean(1)))


def test_minus_001g_is_recovered_exactly():
    row = run_case(CASE["minus_001g"], rows=2000)
    assert row["exact"] and row["r2"] > 1 - 1e-9 and "g_0" in row["equation"]


@pytest.mark.slow
def test_momentum_is_recovered():
    assert run_case(CASE["momentum06"], rows=3000, time_limit=30)["r2"] >= 0.999


def test_sanity_cli_prints_a_table_and_json(capsys):
    assert main(["sanity", "--cases", "minus_001g", "--rows", "1000", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    row = json.loads(out[-1])["rows"][0]
    assert row["name"] == "minus_001g" and row["exact"] and set(row) == {"name", "r2", "seconds", "exact"}
    assert "paper R²" in out[0]
    assert main(["sanity", "--cases", "nope", "--no-progress"]) == 2
