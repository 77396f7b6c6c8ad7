"""The Ray jobs that run the method's stages: the whole pipeline, or the distillation of a dataset.

Both call ``l2o.pipeline.run_pipeline`` with a ``RayPlacement``: the stages, their artifacts and the run
folder are those of ``l2o pipeline``; only where the work runs differs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cluster.config import DistillJob, PipelineJob
from cluster.placement import RayPlacement
from l2o.pipeline import PipelineConfig, Run, run_pipeline


def run_pipeline_job(job: PipelineJob) -> dict[str, Any]:
    cfg = job.pipeline
    if "://" in str(cfg.storage or ""):
        raise ValueError("the pipeline keeps its run folder on a filesystem path; set storage to a path")
    return run_pipeline(cfg, RayPlacement(job.train, job.actors, job.tune), echo=lambda m: print(m, flush=True))


def run_distill_job(job: DistillJob) -> dict[str, Any]:
    """search → fit → select over ``job.dataset`` in the run folder ``job.out``."""
    from l2o.meta.checkpoint import load_checkpoint, meta_config_of

    dataset = Path(job.dataset)
    if not job.dataset or not (dataset / "manifest.json").is_file():
        raise ValueError(f"dataset {job.dataset!r} is not a dataset folder (no manifest.json)")
    out = Path(job.out) if job.out else dataset.parent / f"distill-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    run = Run(out)
    manifest = json.loads((dataset / "manifest.json").read_text())
    entries = {"search": {"folder": str(dataset.resolve()), "rows": manifest.get("rows"),
                          "model": manifest.get("model"), "update_of_raw": manifest.get("update_of_raw")}}
    if job.test_dataset:
        entries["test"] = {"folder": str(Path(job.test_dataset).resolve())}
    if not run.done("record"):
        run.finish("record", entries)
    source = manifest.get("source_checkpoint")
    if job.select.by == "rollout":
        if not source or not Path(source).is_file():
            raise ValueError("selection by rollout needs the dataset's source checkpoint, which is not readable "
                             f"({source!r}); use select.by: r2")
        if not run.done("meta_train"):
            run.finish("meta_train", {"checkpoint": source, "trained": False,
                                      "horizon": max(meta_config_of(load_checkpoint(source)).horizons)})
    cfg = PipelineConfig(run_id=out.name, storage=job.storage, stages=("search", "fit", "select"), task=job.task,
                         search=job.search, fit=job.fit, select=job.select)
    return run_pipeline(cfg, RayPlacement(tune=job.tune), run=run, echo=lambda m: print(m, flush=True))
