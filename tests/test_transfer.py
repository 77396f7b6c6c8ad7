"""benchmarks/transfer.py end to end at its smoke size: the whole method for one model, then every task."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "transfer.py"
TASKS = {"source", "mnist_mlp_deep", "mnist_cnn", "activation", "long"}


def test_transfer_smoke_prints_every_task_and_one_json_line(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--models", "rp_si", "--workers", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("machine:")
    summary = json.loads(lines[-1])
    model = summary["models"]["rp_si"]
    assert set(model["tasks"]) == TASKS and model["final_rule"]
    for name, row in model["tasks"].items():
        assert set(row) == {"rule_vs_lstm", "rule_vs_adam", "rule_vs_tuned_adam", "rule_complexity"}
        assert isinstance(row["rule_complexity"], int) and row["rule_complexity"] >= 1
        for key in ("rule_vs_lstm", "rule_vs_adam", "rule_vs_tuned_adam"):
            assert row[key] is None or (math.isfinite(row[key]) and row[key] > 0), (name, key, row[key])
        assert (out / f"{name}.png").stat().st_size > 0
        assert f"== {name}:" in done.stdout
    results = json.loads((out / "results.json").read_text())
    labels = {c["label"] for c in results["curves"]}
    assert {"rp_si LSTM", "rp_si rule", "adam lr=0.001"} <= labels
    assert sum(label.startswith("tuned adam") for label in labels) == 5  # the whole grid was run


def test_transfer_rejects_unknown_models(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", "rp,lbfgs", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--models" in done.stderr
