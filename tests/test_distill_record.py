"""Rollout recording: windows line up with the rollout, targets are the L2O's outputs, Parquet round-trips."""

import json

import numpy as np
import pytest
import torch

from l2o.expr import parse_equation
from l2o.distill.engines import r2_score
from l2o.expr import predict
from l2o.distill.record import RecordConfig, load_dataset, record, save_dataset
from l2o.features import feature_columns
from l2o.learned import CoordinateLSTM, lstm_config
from l2o.tasks import make_task


def _data(tmp_path=None):
    torch.manual_seed(0)
    l2o = CoordinateLSTM(lstm_config("rp"))
    cfg = RecordConfig(steps=40, seeds=(0, 1), coords_per_tensor=3, window=5, windows_per_coord=4)
    return l2o, record(l2o, make_task("mnist_mlp", batch_size=32), cfg, source="test")


def test_rows_columns_and_targets():
    l2o, ds = _data()
    cfg = ds.manifest["config"]
    assert ds.manifest["rows"] + ds.manifest["skipped_zero_gradient"] == 2 * 6 * 3 * 4
    assert list(ds.frame.columns[:2]) == ["mt_0", "gt_0"] and "g_ema99_4" in ds.frame.columns  # lag-major
    assert ds.manifest["feature_columns"] == feature_columns(cfg["features"], range(5))
    assert ds.manifest["update_of_raw"] == "0.01*tanh(raw)"
    np.testing.assert_allclose(ds.frame["update"], 0.01 * np.tanh(ds.frame["raw"]), rtol=1e-5, atol=1e-9)
    assert (ds.frame["g_0"] != 0).all()  # zero-gradient windows were skipped
    # Lag k of a row holds the features k steps before its step: the step feature counts steps (t/1000).
    for k in range(5):
        np.testing.assert_allclose(ds.frame[f"step_{k}"], (ds.frame["step"] + 1 - k) / 1000)


def test_rows_do_not_depend_on_the_chunking_of_the_coordinates():
    l2o, ds = _data()  # chunks of 8192: three for the MLP's 24,380 coordinates
    cfg = RecordConfig(steps=40, seeds=(0, 1), coords_per_tensor=3, window=5, windows_per_coord=4)
    for chunk_size in (None, 512):
        other = record(l2o, make_task("mnist_mlp", batch_size=32), cfg, source="test", chunk_size=chunk_size)
        assert other.frame.equals(ds.frame)
    with pytest.raises(ValueError, match="chunk_size"):
        record(l2o, make_task("mnist_mlp", batch_size=32), cfg, chunk_size=0)


def test_parquet_round_trip(tmp_path):
    _, ds = _data()
    back = load_dataset(save_dataset(ds, tmp_path / "d"))
    assert back.manifest == json.loads(json.dumps(ds.manifest, default=str))
    np.testing.assert_array_equal(back.frame.to_numpy(), ds.frame.to_numpy())
    X, y, cols = back.xy("raw")
    assert X.shape == (len(back.frame), len(cols)) and y.shape == (len(back.frame),)


def test_distill_cli_end_to_end(tmp_path, capsys):
    from l2o.cli import main
    from l2o.pipeline.distill import update_rule

    ckpt = tmp_path / "rp.pt"
    assert main(["meta-train", "--task", "mnist_mlp", "--task-opt", "batch_size=32", "--epochs", "1",
                 "--epoch-len", "20", "--eval-every", "1", "--eval-seeds", "1", "--out", str(ckpt),
                 "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "distilled"
    assert main(["distill", str(ckpt), "--record.steps", "60", "--record.seeds", "0", "--record.test-seeds", "1",
                 "--record.coords-per-tensor", "4", "--record.windows-per-coord", "6", "--search.generations", "10",
                 "--search.population", "100", "--select.by", "r2", "--select.rule", "accuracy",
                 "--select.r2-threshold", "0.5", "--threads", "1", "--search.seed", "3",
                 "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["by"] == "r2" and summary["run"] == str(out)
    candidates = json.loads((out / "fit" / "candidates.json").read_text())
    cols = candidates["columns"]
    assert cols[:2] == ["mt_0", "gt_0"] and {"mt_ema98_0", "step_0"} <= set(cols)  # the LSTM's memory is offered
    chosen = json.loads((out / "select" / "equations.json").read_text())
    assert chosen["chosen"]["equation"] == summary["equation"]
    assert all(c["r2"] >= c["r2_search"] - 1e-9 for c in candidates["candidates"])  # fitting never makes it worse
    # scored on a rollout the search never saw: recomputed here from the test dataset it wrote
    test = load_dataset(out / "record" / "test")
    assert set(test.frame["seed"]) == {1}
    Xt, yt, _ = test.xy("raw", cols)
    expr = parse_equation(summary["equation"], variables=cols)
    assert summary["r2_new_rollouts"] == pytest.approx(r2_score(yt, predict(expr, Xt, cols)), abs=1e-9)
    assert parse_equation(summary["update_rule"]) == update_rule(expr, "0.01*tanh(raw)")  # the squash of the RP
    for f in ("record/search/data.parquet", "record/search/manifest.json", "search/front.json",
              "select/response.png", "report.json"):
        assert (out / f).stat().st_size > 0


def test_distill_refuses_test_seeds_it_searches_on():
    from l2o.pipeline import RecordStage

    with pytest.raises(ValueError, match=r"test_seeds \[1\] are also searched on"):
        RecordStage(steps=40, seeds=(0, 1), test_seeds=(1, 2))
