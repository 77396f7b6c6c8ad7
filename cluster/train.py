"""Meta-training on Ray Train (V2): a ``TorchTrainer`` whose workers each run ``l2o``'s ``MetaTrainer``.

Every worker builds the same learned optimizer (same seed), then meta-trains on its own optimizees
(MetaTrainConfig seed + rank). ``DistributedSync`` averages the meta-gradient over workers after every
backward pass (an all-reduce, as DDP does; whether every worker's window was finite travels in the same
exchange, so a window has one point where workers wait for each other) and makes the workers agree on
evaluation losses and the time budget, so their weights and curriculum stay identical. After every unroll window
each worker sets Ray gauges (``l2o_meta_train_window_loss`` …, tagged by run and rank: the dashboard's
Metrics page); after every epoch the workers call ``ray.train.report`` (the run's metrics), and every
``checkpoint_every`` epochs rank 0 writes the l2o checkpoint file into a temporary folder and reports
it with them. After a failure the worker group restarts (``FailureConfig(max_failures)``) and resumes from
``ray.train.get_checkpoint()``: the run goes on exactly where that checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cluster.config import MetaTrainJob, storage_uri
from l2o.config import from_dict, to_dict

CHECKPOINT_FILE = "checkpoint.pt"
POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


class DistributedSync:
    """``l2o.meta.Sync`` over ``torch.distributed`` (gloo on CPU, NCCL on GPU)."""

    def __init__(self, device: torch.device):
        import torch.distributed as dist

        self.dist, self.device = dist, device
        self.world = dist.get_world_size()

    def gradients(self, params: list[torch.Tensor], ok: bool = True) -> bool:
        flag = torch.ones(1, dtype=params[0].grad.dtype, device=params[0].grad.device) * float(ok)
        flat = torch.cat([p.grad.reshape(-1) for p in params] + [flag]).to(self.device)
        self.dist.all_reduce(flat)  # the flag's sum counts the processes whose window was finite
        every = bool(flat[-1].item() == self.world)
        flat /= self.world
        for p, g in zip(params, flat[:-1].split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p.grad))
        return every

    def all(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MIN)
        return bool(t.item() > 0.5)

    def mean(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return float(t.item()) / self.world


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker function of the ``TorchTrainer``."""
    import ray.train

    from l2o.learned import CoordinateLSTM
    from l2o.meta import MetaTrainer
    from l2o.meta.checkpoint import load_checkpoint, restore_trainer, save_checkpoint

    job = from_dict(MetaTrainJob, config)
    place = job.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(place.threads_per_worker)
    device = ray.train.torch.get_device() if place.use_gpu else torch.device("cpu")
    task = job.task.build(str(device))
    meta = job.meta
    torch.manual_seed(meta.seed)  # identical initial weights on every worker
    l2o = CoordinateLSTM(job.l2o).to(device)
    own = dataclasses.replace(meta, seed=meta.seed + 7919 * rank)  # rank 0 sees exactly a single run's data
    trainer = MetaTrainer(l2o, task, own, sync=DistributedSync(device) if world > 1 else None)
    task_spec = to_dict(job.task)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            restore_trainer(trainer, load_checkpoint(Path(folder) / CHECKPOINT_FILE))
    resumed_from = trainer.state.epoch  # 0 for a fresh start
    gauges = _window_gauges(job, rank) if place.report_windows else None
    windows = {"done": 0}  # throughput bookkeeping: windows this worker ran since this (re)start

    def on_window(metrics: dict[str, Any]) -> None:
        windows["done"] += 1
        windows["at"] = time.monotonic()
        if gauges:
            gauges(metrics)

    trainer.on_window = on_window
    deadline = time.monotonic() + meta.max_minutes * 60 if meta.max_minutes else None

    def on_epoch(record: dict[str, Any]) -> None:
        # windows per second over all workers, from the first epoch's last window (warm-up) to the latest
        # window, so that evaluations after an epoch's last window do not count
        windows.setdefault("first_epoch", (windows["done"], windows.get("at", time.monotonic())))
        w0, t0 = windows["first_epoch"]
        steady = (windows["done"] - w0) * world / (windows["at"] - t0) if windows["done"] > w0 else None
        metrics = {**{k: v for k, v in record.items() if v is not None}, "kind": "epoch",
                   "level": trainer.state.level, "best_eval": trainer.state.best_eval, "resumed_from": resumed_from,
                   "windows_done": windows["done"], "workers": world, "windows_per_s": steady}
        last = trainer.state.done or trainer.state.epoch >= meta.epochs or (
            deadline is not None and time.monotonic() >= deadline)
        if trainer.state.epoch % place.checkpoint_every and not last:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            if rank == 0:  # the file records the run's config, not this worker's share of it
                save_checkpoint(Path(tmp) / CHECKPOINT_FILE, trainer, task_spec, meta_config=meta)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None)

    trainer.fit(on_epoch, max_seconds=(deadline - time.monotonic()) if deadline else None)


def _window_gauges(job: MetaTrainJob, rank: int):
    """Per-window metrics as Ray gauges: non-blocking (``ray.train.report`` is a barrier across workers),
    exported with the cluster's metrics and shown on the dashboard's Metrics page."""
    from ray.util.metrics import Gauge

    tags = {"run": job.name or "", "rank": str(rank)}
    keys = tuple(tags)
    gauges = {name: Gauge(f"l2o_meta_train_{name}", description=text, tag_keys=keys) for name, text in (
        ("window_loss", "mean optimizee loss of the last unroll window"), ("epoch", "current epoch"),
        ("window", "index of the last window in its epoch"), ("horizon", "steps per epoch at this curriculum level"))}

    def on_window(metrics: dict[str, Any]) -> None:
        for name, gauge in gauges.items():
            gauge.set(float(metrics[name]), tags=tags)

    return on_window


def run_name(job: MetaTrainJob) -> str:
    return job.name or f"{job.l2o.model}-{job.task.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def meta_train(job: MetaTrainJob):
    """Run ``job`` on the connected Ray cluster; the ``ray.train.Result`` (its checkpoint is the last)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    job = dataclasses.replace(job, name=run_name(job))
    place = job.train
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=to_dict(job),
        scaling_config=ScalingConfig(num_workers=place.num_workers, use_gpu=place.use_gpu,
                                     resources_per_worker={"CPU": place.cpus_per_worker}),
        run_config=RunConfig(name=job.name, storage_path=f"{storage_uri(job.storage)}/ray",
                             failure_config=FailureConfig(max_failures=place.max_failures,
                                                          controller_failure_limit=place.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=3)),
    )
    # Ray Train reads its poll interval from the driver's environment when fit() starts the controller.
    previous = os.environ.get(POLL_ENV)
    os.environ[POLL_ENV] = str(place.controller_poll_s)
    try:
        return trainer.fit()
    finally:
        if previous is None:
            os.environ.pop(POLL_ENV, None)
        else:
            os.environ[POLL_ENV] = previous
