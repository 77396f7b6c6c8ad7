"""Distillation datasets in parallel: a pool of Ray actors, each holding the learned optimizer once.

Work is one rollout seed at a time, handed to whichever actor is free; each actor records its seed with
``l2o.distill.record`` and writes the shard ``seed-<k>.parquet`` itself (local path or any pyarrow
filesystem URI). The driver writes one ``manifest.json`` when every shard is in. ``record`` draws its
coordinate choice and window placement from (record seed, rollout seed), so the rows of a seed do not
depend on how many actors there are or which one ran it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cluster.config import GenerateJob, storage_uri
from l2o.config import to_dict
from l2o.distill.record import RecordConfig
from l2o.tasks import TaskSpec


def _filesystem(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


class RolloutWorker:
    """The actor body (wrapped by ``ray.remote`` in ``generate``): one L2O and one task, many seeds."""

    def __init__(self, checkpoint: str, task: TaskSpec | None, threads: int, device: str = "cpu"):
        import torch

        from l2o.learned import l2o_from_checkpoint, load_checkpoint

        torch.set_num_threads(threads)
        doc = load_checkpoint(checkpoint)
        spec = task or TaskSpec(**doc["task"])  # default: the task the checkpoint was trained on
        self.l2o = l2o_from_checkpoint(doc).to(device)
        self.task = spec.build(device)
        self.checkpoint = checkpoint
        self._warm_up(device)

    def _warm_up(self, device: str) -> None:
        """Pay the one-time costs here, not in the first seed: the dataset load, the imports of the
        recording path, the first call of the L2O (native kernels load then)."""
        import pyarrow.parquet  # noqa: F401
        import torch

        import l2o.distill.record  # noqa: F401

        next(self.task.batches("eval", 0))
        with torch.no_grad():
            g = torch.zeros(64, device=device)
            self.l2o.step(g, self.l2o.init_state(g))

    def ready(self) -> bool:
        return True

    def record_seed(self, seed: int, config: RecordConfig, out: str) -> dict[str, Any]:
        import dataclasses

        import pyarrow as pa
        import pyarrow.parquet as pq

        from l2o.distill.record import record as record_rollouts

        cfg = dataclasses.replace(config, seeds=(seed,))
        t0 = time.perf_counter()
        ds = record_rollouts(self.l2o, self.task, cfg, source=self.checkpoint)
        fs, root = _filesystem(out)
        fs.create_dir(root, recursive=True)
        pq.write_table(pa.Table.from_pandas(ds.frame, preserve_index=False), f"{root}/seed-{seed}.parquet",
                       filesystem=fs)
        return {"seed": seed, "rows": len(ds.frame), "shard": f"seed-{seed}.parquet", "seconds": time.perf_counter() - t0,
                "manifest": ds.manifest}


def generate(job: GenerateJob, progress: bool = True) -> dict[str, Any]:
    """Record ``job`` on the connected cluster; returns the manifest (also written next to the shards)."""
    import ray
    from ray.util import ActorPool
    from tqdm.auto import tqdm

    if not job.checkpoint:
        raise ValueError("generate needs checkpoint: an l2o checkpoint file")
    seeds = list(job.record.seeds)
    name = job.name or f"dataset-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out = job.out or f"{storage_uri(job.storage)}/datasets/{name}"
    place = job.actors
    resources = ray.cluster_resources()
    unit = "GPU" if place.use_gpu else "CPU"
    n = place.num_actors or max(1, int(resources.get(unit, 1) // 1))
    n = min(n, len(seeds))
    actor_cls = ray.remote(num_cpus=0 if place.use_gpu else 1, num_gpus=1 if place.use_gpu else 0)(RolloutWorker)
    actors = [actor_cls.remote(job.checkpoint, job.task, place.threads_per_actor,
                               "cuda" if place.use_gpu else "cpu") for _ in range(n)]
    ray.get([a.ready.remote() for a in actors])  # load the checkpoint and data once per actor, before timing
    t0 = time.perf_counter()
    pool = ActorPool(actors)
    shards = []
    bar = tqdm(total=len(seeds), desc=f"generate ({n} actors)", unit="seed", disable=not progress)
    for result in pool.map_unordered(lambda a, s: a.record_seed.remote(s, job.record, out), seeds):
        shards.append(result)
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    shards.sort(key=lambda r: r["seed"])
    manifest = {**shards[0]["manifest"], "rows": sum(r["rows"] for r in shards),
                "skipped_zero_gradient": sum(r["manifest"]["skipped_zero_gradient"] for r in shards),
                "shards": [r["shard"] for r in shards], "actors": n, "generate_seconds": seconds}
    manifest["config"] = to_dict(job.record)
    fs, root = _filesystem(out)
    with fs.open_output_stream(f"{root}/manifest.json") as f:
        f.write(json.dumps(manifest, indent=1, default=str).encode())
    return {**manifest, "out": out}
