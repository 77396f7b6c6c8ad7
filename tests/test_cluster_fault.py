"""A worker node lost mid meta-training: Ray Train restarts the group from the last checkpoint and the
run ends where an undisturbed run with the same seed ends. Several raylets on one machine
(``ray.cluster_utils.Cluster``), loopback only."""

import dataclasses
import os
import threading
import time

import pytest

from cluster.config import MetaTrainJob, TrainPlacement
from l2o.meta import MetaTrainConfig
from l2o.tasks import TaskSpec

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


@pytest.fixture
def three_node_cluster(monkeypatch):
    from conftest import ray_env

    # a restarted worker group starts on a fresh raylet: on 2 busy cores that can exceed Ray's 60 s default
    for key, value in ray_env(RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S="300").items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1"})
    # three 1-CPU nodes for a 2-worker run: the spare takes the place of the node that is lost
    workers = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(3)]
    ray.init(address=cluster.address)
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_lost_node_resumes_from_checkpoint_and_matches_an_undisturbed_run(three_node_cluster, tmp_path):
    from cluster.train import meta_train

    cluster, workers = three_node_cluster
    job = MetaTrainJob(task=TaskSpec("quadratic"),
                       meta=MetaTrainConfig(epochs=10, epoch_len=100, unroll=20, eval_every=2, eval_seeds=1),
                       train=TrainPlacement(num_workers=2, checkpoint_every=1, max_failures=2,
                                            controller_poll_s=0.2),  # short epochs
                       storage=str(tmp_path / "a"), name="plain")
    plain = meta_train(job)
    assert plain.error is None and plain.metrics["resumed_from"] == 0

    killed = {}

    def kill_a_worker_node():  # the node of a live training worker, once checkpoints are written and registered
        from ray.util.state import list_actors

        run = tmp_path / "b" / "ray" / "killed"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if len([p for p in run.glob("checkpoint_*") if p.is_dir()]) >= 3:
                time.sleep(0.5)  # the controller registers a checkpoint shortly after it is written
                alive = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
                victim = next(n for n in workers if n.node_id in {a.node_id for a in alive})
                cluster.remove_node(victim)
                killed["at"] = len([p for p in run.glob("checkpoint_*") if p.is_dir()])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_a_worker_node, daemon=True)
    thread.start()
    result = meta_train(dataclasses.replace(job, storage=str(tmp_path / "b"), name="killed"))
    thread.join(timeout=10)
    assert killed, "the run ended before a node could be killed"
    assert result.error is None
    assert result.metrics["resumed_from"] >= 1  # restarted from a checkpoint, not from scratch
    assert result.metrics["epoch"] == plain.metrics["epoch"] == 9
    assert result.metrics["meta_loss"] == pytest.approx(plain.metrics["meta_loss"], rel=1e-6)
    assert result.metrics["eval_loss"] == pytest.approx(plain.metrics["eval_loss"], rel=1e-6)
    assert os.path.exists(os.path.join(result.checkpoint.path, "checkpoint.pt"))
