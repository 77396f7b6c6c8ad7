"""Ray jobs against a real Ray head on 127.0.0.1: submitted with ``ray job submit``, polled to the end."""

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


def submit(head, *entrypoint: str) -> str:
    done = subprocess.run(["ray", "job", "submit", "--address", head["dashboard"], "--working-dir", str(head["root"]),
                           "--no-wait", "--", *entrypoint], env=head["env"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    return next(line.split("'")[1] for line in out.splitlines() if "submitted successfully" in line)


def last_json(logs: str) -> dict:
    """The job's summary: its last line that is a JSON object (Ray may stream worker logs after it)."""
    for line in reversed(logs.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON summary in the job logs:\n{logs[-3000:]}")


def wait(head, job_id: str, timeout: float = 420, during=None) -> str:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(head["dashboard"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            break
        if during and status == JobStatus.RUNNING:
            during()
        time.sleep(2)
    else:
        client.stop_job(job_id)
        pytest.fail(f"job {job_id} still {status} after {timeout} s:\n{client.get_job_logs(job_id)[-3000:]}")
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job_id)[-3000:]
    return client.get_job_logs(job_id)


def test_local_head_listens_on_loopback_only(ray_head):
    import psutil

    listening = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "ray" not in cmd or ray_head["env"]["RAY_TMPDIR"] not in cmd and "gcs_server" not in cmd:
            continue
        try:
            listening |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening


def test_meta_train_smoke_job_succeeds_and_leaves_a_checkpoint(ray_head, tmp_path):
    versions = []

    def dashboard_answers():
        with urllib.request.urlopen(f"{ray_head['dashboard']}/api/version", timeout=10) as r:
            versions.append(json.loads(r.read()))

    member = {"name": "mnist_mlp", "options": {"hidden": [10], "batch_size": 32}}  # epoch 1 trains on it
    config = tmp_path / "family.json"
    config.write_text(json.dumps({"meta": {"family": [member]}}))
    job = submit(ray_head, "python", "jobs/meta_train.py", "--smoke", "--config", str(config), "--storage", str(tmp_path),
                 "--name", "smoke")
    logs = wait(ray_head, job, during=dashboard_answers)
    assert versions and "ray_version" in versions[0]
    summary = last_json(logs)
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.is_file() and checkpoint.is_relative_to(tmp_path / "ray" / "smoke")
    from l2o.learned import l2o_from_checkpoint, load_checkpoint

    doc = load_checkpoint(checkpoint)
    assert doc["train_state"]["epoch"] == 3 and doc["meta_config"]["seed"] == 0
    assert doc["meta_config"]["family"] == [member]
    l2o_from_checkpoint(checkpoint)  # a checkpoint l2o eval / LSTMOptimizer can use


@pytest.fixture
def small_checkpoint(tmp_path):
    """An RP checkpoint after one short meta-training epoch (the rollouts only need a working L2O)."""
    import torch

    from l2o.learned import CoordinateLSTM, lstm_config
    from l2o.meta.checkpoint import save_checkpoint
    from l2o.meta import MetaTrainConfig, MetaTrainer
    from l2o.tasks import make_task

    torch.manual_seed(0)
    task = make_task("mnist_mlp", batch_size=32)
    trainer = MetaTrainer(CoordinateLSTM(lstm_config("rp")), task, MetaTrainConfig(epochs=1, epoch_len=20))
    trainer.fit()
    return save_checkpoint(tmp_path / "rp.pt", trainer, {"name": "mnist_mlp", "options": {"batch_size": 32}})


def test_generate_gives_the_same_rows_whatever_the_actor_count(ray_head, small_checkpoint, tmp_path, monkeypatch):
    import ray

    from cluster.config import GenerateJob, build_job
    from l2o.config import replace
    from cluster.generate import generate
    from l2o.distill.record import load_dataset

    for key, value in ray_head["env"].items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    ray.init(address=ray_head["address"])
    try:
        job = build_job(GenerateJob, {"checkpoint": str(small_checkpoint)}, smoke=True)
        one = generate(replace(job, actors={"num_actors": 1}, out=str(tmp_path / "one")), progress=False)
        two = generate(replace(job, actors={"num_actors": 2}, out=str(tmp_path / "two")), progress=False)
    finally:
        ray.shutdown()
    assert (one["actors"], two["actors"]) == (1, 2) and one["rows"] == two["rows"] > 0
    a, b = load_dataset(tmp_path / "one"), load_dataset(tmp_path / "two")
    assert a.manifest["shards"] == [f"seed-{s}.parquet" for s in (0, 1, 2, 3)]
    assert a.frame.equals(b.frame) and a.manifest["feature_columns"] == b.manifest["feature_columns"]
    assert sorted(a.frame["seed"].unique()) == [0, 1, 2, 3]


def test_pipeline_smoke_job_writes_its_report_and_skips_done_stages(ray_head, tmp_path):
    job = submit(ray_head, "python", "jobs/pipeline.py", "--smoke", "--storage", str(tmp_path), "--run-id", "p1")
    logs = wait(ray_head, job, timeout=900)
    run = tmp_path / "runs" / "p1"
    report = json.loads((run / "report.json").read_text())
    stages = ("meta_train", "record", "search", "fit", "select", "meta_tune", "evaluate")
    assert set(report["stages"]) == set(stages) and report["placement"] == "ray"
    assert report["stages"]["search"]["searches"] == 2  # two Tune trials: max_complexity 8 and 12
    assert report["stages"]["meta_train"]["workers"] == 2 and (run / "evaluate" / "curves.png").stat().st_size > 1000
    finals = report["stages"]["evaluate"]["final_loss"]
    assert {"LSTM", "distilled rule", "adam(lr=0.001)", "sgd(lr=0.1)"} <= set(finals)
    assert any(label.startswith("tuned adam") for label in finals)
    from l2o.expr import parse_equation

    parse_equation(last_json(logs)["equation"])
    for stage in ("meta_tune", "evaluate"):  # rerun: only the stages whose manifest is gone run again
        (run / stage / "manifest.json").unlink()
    logs = wait(ray_head, submit(ray_head, "python", "jobs/pipeline.py", "--smoke", "--storage", str(tmp_path),
                                 "--run-id", "p1"))
    assert last_json(logs)["skipped"] == ["meta_train", "record", "search", "fit", "select"]
