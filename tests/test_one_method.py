"""One method, three callers: ``l2o pipeline`` (in this process), ``ray job submit … jobs/pipeline.py``
(Tune trials on a real Ray head) and ``POST /distill`` (a real uvicorn) choose the same equation from the
same recorded dataset and seed."""

import json

import pytest

from conftest import Service
from test_cluster_jobs import last_json, submit, wait

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]
TOKEN = "one-method-token"
SEARCH = {"operators": [["add", "sub", "mul", "div", "tanh"]], "max_complexity": [8, 12], "population": [120],
          "generations": [20], "seed": 4, "max_lag": 1}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A run folder with a small meta-trained RP and its recorded rollouts (stages meta_train, record)."""
    from l2o.pipeline import PipelineConfig, Placement, run_pipeline

    storage = tmp_path_factory.mktemp("one-method")
    cfg = {"run_id": "recorded", "storage": str(storage), "stages": ["meta_train", "record"],
           "task": {"name": "mnist_mlp", "options": {"batch_size": 32}},
           "meta_train": {"epochs": 2, "epoch_len": 40, "eval_every": 1, "eval_seeds": 1},
           "record": {"steps": 80, "seeds": [0, 1], "test_seeds": [2], "coords_per_tensor": 6, "window": 4}}
    from l2o.config import from_dict

    run_pipeline(from_dict(PipelineConfig, cfg), Placement())
    return storage, cfg


def _runs_from(storage, source: str, target: str) -> None:
    """A new run folder that starts where ``source`` stopped: the same checkpoint and datasets."""
    import shutil

    for stage in ("meta_train", "record"):
        (storage / "runs" / target / stage).mkdir(parents=True)
        shutil.copy(storage / "runs" / source / stage / "manifest.json", storage / "runs" / target / stage)


def test_cli_ray_job_and_rest_choose_the_same_equation(recorded, ray_head, tmp_path):
    import httpx
    import pandas as pd

    from l2o.cli import main
    from l2o.distill.record import load_dataset
    from l2o.expr import parse_equation

    storage, base = recorded
    stages = ["search", "fit", "select"]
    cfg = {**base, "stages": stages, "search": SEARCH, "select": {"by": "r2"}}
    for run_id in ("cli", "ray"):
        _runs_from(storage, "recorded", run_id)

    config = tmp_path / "cli.json"
    config.write_text(json.dumps({**cfg, "run_id": "cli"}))
    assert main(["pipeline", "--config", str(config), "--threads", "1", "--no-progress"]) == 0
    cli = json.loads((storage / "runs" / "cli" / "select" / "equations.json").read_text())

    job = tmp_path / "job.json"
    job.write_text(json.dumps({"pipeline": {**cfg, "run_id": "ray"}, "tune": {"max_concurrent": 2}}))
    logs = wait(ray_head, submit(ray_head, "python", "jobs/pipeline.py", "--config", str(job)), timeout=600)
    ray_report = json.loads((storage / "runs" / "ray" / "report.json").read_text())
    assert ray_report["placement"] == "ray" and ray_report["stages"]["search"]["searches"] == 2
    ray_run = json.loads((storage / "runs" / "ray" / "select" / "equations.json").read_text())
    assert last_json(logs)["equation"] == ray_run["update_rule"]["equation"]

    columns = json.loads((storage / "runs" / "cli" / "fit" / "candidates.json").read_text())["columns"]
    ds = load_dataset(storage / "runs" / "recorded" / "record" / "search")
    upload = pd.DataFrame(ds.frame[columns].to_numpy(), columns=columns).assign(y=ds.frame["raw"].to_numpy())
    env = {**ray_head["env"], "L2O_STORAGE": str(tmp_path / "service"), "L2O_API_TOKEN": TOKEN,
           "RAY_ADDRESS": ray_head["dashboard"], "L2O_SYNC_DISTILL_SECONDS": "120"}
    svc = Service(env, ray_head["root"]).start()
    try:
        settings = {k: v for k, v in SEARCH.items() if k != "max_lag"}
        r = httpx.post(f"{svc.url}/distill", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300,
                       files={"file": ("rows.parquet", upload.to_parquet(index=False), "application/octet-stream")},
                       data={"settings": json.dumps(settings)})
    finally:
        svc.stop()
    assert r.status_code == 200, r.text
    rest = r.json()["equation"]["text"]

    chosen = {parse_equation(d) for d in (cli["chosen"]["equation"], ray_run["chosen"]["equation"], rest)}
    assert len(chosen) == 1, (cli["chosen"]["equation"], ray_run["chosen"]["equation"], rest)
    assert cli["candidates"] == ray_run["candidates"]  # the same pooled front, fitted alike
