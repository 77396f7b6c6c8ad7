"""Symbolic regression settings searched with Ray Tune: each trial runs one engine on one dataset.

A trial reads the dataset (Parquet shards + manifest), runs ``make_engine(engine, operators, max
complexity, population, generations)``, picks from the Pareto front the equation that maximises
held-out R² − parsimony · complexity, fits its constants (stage 2) and reports the held-out R² of the
fitted equation (``r2``, the objective), its complexity and its text. The search algorithm (Optuna's
TPE, or Tune's random search) runs behind a concurrency limit. The best trial's equation is written to
``best.json`` with its trial config, and, when the source checkpoint is readable, ``update_rule``: the
step it implies (what ``SymbolicOptimizer`` and ``l2o meta-tune`` read).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from cluster.config import DistillJob


def trial(config: dict[str, Any]) -> None:
    """One Tune trial (a function trainable)."""
    import torch
    from ray import tune

    from l2o.distill.engines import make_engine
    from l2o.distill.fit import fit_constants
    from l2o.distill.pipeline import default_features, select_columns
    from l2o.distill.record import load_dataset

    torch.set_num_threads(1)
    ds = load_dataset(config["dataset"])
    columns = config["columns"] or select_columns(config["features"] or default_features(ds.manifest["model"]),
                                                  config["max_lag"])
    X, y, cols = ds.xy(config["target"], columns)
    engine = make_engine(config["engine"], operators=tuple(config["operators"].split(",")),
                         max_complexity=int(config["max_complexity"]), population=int(config["population"]),
                         generations=int(config["generations"]), time_limit=config["time_limit"],
                         seed=config["seed"]).fit(X, y, cols)
    score = lambda e: (e.r2 if e.r2 is not None and math.isfinite(e.r2) else -1e9) - config["parsimony"] * e.complexity  # noqa: E731
    chosen = max(engine.pareto_front_, key=score)
    fitted, report = fit_constants(chosen, X, y, cols, seed=config["seed"])
    r2 = fitted.r2 if fitted.r2 is not None and math.isfinite(fitted.r2) else -1e9
    tune.report({"r2": r2, "r2_search": chosen.r2 if chosen.r2 is not None else -1e9,
                 "complexity": fitted.complexity, "equation": fitted.text, "latex": fitted.latex(),
                 "columns": ",".join(cols), "search_seconds": engine.seconds_})


def search_space(job: DistillJob) -> dict[str, Any]:
    from ray import tune

    fixed = {"dataset": str(Path(job.dataset).resolve()) if "://" not in job.dataset else job.dataset,
             "features": job.features, "columns": job.columns, "max_lag": job.max_lag, "target": job.target,
             "time_limit": job.time_limit, "seed": job.seed}
    searched = {k: tune.choice(list(v)) if isinstance(v, (list, tuple)) else v for k, v in job.search.items()}
    missing = {"engine", "operators", "max_complexity", "population", "generations", "parsimony"} - set(searched)
    if missing:
        raise ValueError(f"search is missing {sorted(missing)}")
    return {**fixed, **searched}


def _search_alg(job: DistillJob):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if job.search_alg == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch

            return ConcurrencyLimiter(OptunaSearch(seed=job.seed), max_concurrent=job.max_concurrent)
        except (ImportError, AssertionError) as err:  # Tune asserts when optuna is missing
            raise ValueError("search_alg optuna needs the optuna package (pip install optuna), "
                             f"or use search_alg: random ({err})") from err
    if job.search_alg == "random":
        return BasicVariantGenerator(max_concurrent=job.max_concurrent, random_state=job.seed)
    raise ValueError(f"search_alg must be optuna or random, got {job.search_alg!r}")


def distill(job: DistillJob) -> dict[str, Any]:
    """Run the search on the connected cluster; writes ``<out>/best.json`` and ``<out>/trials.json``."""
    from ray import tune

    if not job.dataset or not (Path(job.dataset) / "manifest.json").exists():
        raise ValueError(f"dataset {job.dataset!r} is not a dataset folder (no manifest.json)")
    out = Path(job.out) if job.out else Path(job.dataset).parent / f"distill-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": job.cpus_per_trial}),
        param_space=search_space(job),
        tune_config=tune.TuneConfig(metric="r2", mode="max", num_samples=job.num_samples,
                                    search_alg=_search_alg(job)),
        run_config=tune.RunConfig(name="tune", storage_path=str(out.resolve())),
    )
    results = tuner.fit()
    rows = []
    for r in results:
        if r.error is None and r.metrics:
            rows.append({"config": {k: v for k, v in r.config.items() if k != "dataset"},
                         **{k: r.metrics.get(k) for k in ("r2", "r2_search", "complexity", "equation", "latex",
                                                          "search_seconds")}})
    if not rows:
        raise RuntimeError(f"every trial failed; see {out / 'tune'}")
    best = max(rows, key=lambda row: row["r2"])
    doc = {"equation": best["equation"], "r2": best["r2"], "complexity": best["complexity"], "latex": best["latex"],
           "meta": {"trial_config": best["config"], "dataset": job.dataset, "engine": best["config"]["engine"]}}
    rule = _update_rule(job, best)
    if rule is not None:
        doc["update_rule"] = rule
    (out / "best.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / "trials.json").write_text(json.dumps(rows, indent=1, default=str))
    return {**doc, "out": str(out), "trials": len(rows)}


def _update_rule(job: DistillJob, best: dict[str, Any]) -> dict[str, Any] | None:
    """The chosen equation as the step the source optimizer takes (raw output squashed like the L2O)."""
    from l2o.distill import Equation, parse_equation

    manifest = json.loads((Path(job.dataset) / "manifest.json").read_text())
    expr = parse_equation(best["equation"])
    if job.target == "update":
        return Equation(expr, r2=best["r2"], meta={"from": "best"}).to_dict()
    source = manifest.get("source_checkpoint")
    if not source or not Path(source).exists():
        return None
    from l2o.learned import l2o_from_checkpoint

    return Equation(l2o_from_checkpoint(source).squash_expr(expr), r2=best["r2"], meta={"from": "best"}).to_dict()
