"""The searches of a ``SearchConfig`` as Ray Tune trials: one trial per combination of its settings.

Tune runs the grid of search points (``tune.grid_search``) behind a concurrency limit; each trial runs
``l2o.pipeline.placement.search_point`` — the function the in-process placement calls — on the rows
handed to it through the object store, and reports its Pareto front, its size and its best validation R²
(Tune's metric, for the dashboard and the trial table). The fronts come back in the order of the points,
so pooling them gives what the in-process search gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cluster.config import SearchPlacement
from l2o.expr import Equation


def trial(config: dict[str, Any], X=None, y=None, columns=None, engine=None, points=None) -> None:
    """One Tune trial (a function trainable): the search at ``points[config["index"]]``."""
    from ray import tune

    from l2o.pipeline.placement import search_point

    front, seconds = search_point(X, y, columns, engine, points[config["index"]])
    best = max((e.meta.get("validation_r2") or -math.inf for e in front), default=-math.inf)
    tune.report({"index": config["index"], "validation_r2": best if math.isfinite(best) else -1e9,
                 "equations": [e.to_dict() for e in front], "size": len(front), "seconds": seconds})


def search(X: np.ndarray, y: np.ndarray, columns: Sequence[str], engine: str, points: Sequence[dict[str, Any]],
           place: SearchPlacement, storage: str | Path) -> list[tuple[list[Equation], float]]:
    """Every point's (front, seconds), in the order of ``points``; the trials' records under ``storage``."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    threads = max(1, int(place.cpus_per_trial))
    points = [{**p, "threads": threads} for p in points]
    trainable = tune.with_parameters(trial, X=X, y=y, columns=list(columns), engine=engine, points=points)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": place.cpus_per_trial}),
        param_space={"index": tune.grid_search(list(range(len(points))))},
        tune_config=tune.TuneConfig(metric="validation_r2", mode="max",
                                    search_alg=BasicVariantGenerator(max_concurrent=place.max_concurrent)),
        run_config=tune.RunConfig(name="tune", storage_path=str(Path(storage).resolve())),
    )
    results = tuner.fit()
    by_index: dict[int, tuple[list[Equation], float]] = {}
    for r in results:
        if r.error is not None or not r.metrics:
            raise RuntimeError(f"a search trial failed: {r.error}")
        by_index[int(r.metrics["index"])] = ([Equation.from_dict(d) for d in r.metrics["equations"]],
                                             float(r.metrics["seconds"]))
    return [by_index[i] for i in range(len(points))]
