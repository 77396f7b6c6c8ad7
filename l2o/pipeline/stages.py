"""The stages of the method as functions of one ``PipelineConfig``, a ``Run`` folder and a placement:

    meta_train → record → search → fit (every candidate, with its update rule) → select → meta_tune → evaluate

Each reads the folders of earlier stages and writes its own, finished by a manifest (``l2o.pipeline.run``);
``run_pipeline`` runs the configured stages in order and skips those already done. The CLI runs them with
the in-process ``Placement``, the Ray job with ``cluster.placement.RayPlacement``, the REST service calls
the search → fit → select functions of ``l2o.pipeline.distill`` itself: one method, three callers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from l2o.distill.record import default_features, load_dataset
from l2o.distill.select import choose, eligible
from l2o.eval.optimizers import OptimizerSpec
from l2o.eval.report import format_table, plot_curves, save_csv, save_json
from l2o.eval.rollout import Curves, final_geometric
from l2o.expr import Equation
from l2o.features import feature_columns
from l2o.meta.checkpoint import load_checkpoint, meta_config_of
from l2o.pipeline.config import MetaTuneConfig, PipelineConfig
from l2o.pipeline.distill import as_equations, fit_front, search_front
from l2o.pipeline.placement import Placement, RolloutJob, meta_config
from l2o.pipeline.run import Run, read_json, write_json

log = logging.getLogger(__name__)
SELECT_SEED0 = 1000  # selection rolls out meta_valid optimizees 1000, 1001, …: none of evaluation's 0..K-1
COMPARE_SEED0 = 2000  # the tuned and the selected rule meet on meta_valid optimizees 2000, 2001, …


def checkpoint_of(run: Run) -> str:
    return run.manifest("meta_train")["checkpoint"]


def stage_meta_train(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    if cfg.checkpoint:  # distil a given checkpoint: nothing to train
        path = Path(cfg.checkpoint).expanduser().resolve()
        doc = load_checkpoint(path)
        return {"checkpoint": str(path), "trained": False, "epochs": doc["train_state"]["epoch"],
                "horizon": max(meta_config_of(doc).horizons)}
    out = run.stage("meta_train") / "checkpoint.pt"
    summary = place.meta_train(cfg.l2o, cfg.task, cfg.meta_train, out, cfg.device, cfg.dtype)
    return {**summary, "checkpoint": str(out.resolve()), "trained": True, "horizon": max(cfg.meta_train.horizons)}


def stage_record(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    checkpoint = checkpoint_of(run)
    base = {f.name: getattr(cfg.record, f.name) for f in dataclasses.fields(cfg.record) if f.name != "test_seeds"}
    from l2o.distill.record import RecordConfig

    search_cfg = RecordConfig(**base)
    out = run.stage("record")
    manifest = {"search": _rows(place.record(checkpoint, cfg.task, search_cfg, out / "search", cfg.device, cfg.dtype),
                                out / "search")}
    if cfg.record.test_seeds:
        test_cfg = dataclasses.replace(search_cfg, seeds=cfg.record.test_seeds)
        manifest["test"] = _rows(place.record(checkpoint, cfg.task, test_cfg, out / "test", cfg.device, cfg.dtype),
                                 out / "test")
    return manifest


def _rows(manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A dataset's entry in the record manifest; later stages read the dataset from ``folder``."""
    return {"folder": str(folder.resolve()), **{k: manifest[k] for k in (
        "rows", "skipped_zero_gradient", "model", "update_of_raw") if k in manifest}}


def search_columns(cfg: PipelineConfig, manifest: dict[str, Any]) -> list[str]:
    if cfg.search.columns:
        return list(cfg.search.columns)
    features = cfg.search.features or default_features(manifest.get("model", ""))
    window = manifest["config"]["window"]
    if cfg.search.max_lag >= window:
        raise ValueError(f"search.max_lag {cfg.search.max_lag} must be below the recorded window ({window})")
    return feature_columns(features, range(cfg.search.max_lag + 1))


def _data(cfg: PipelineConfig, run: Run, which: str = "search"):
    entry = run.manifest("record").get(which)
    if entry is None:
        return None
    folder = Path(entry["folder"])
    ds = load_dataset(folder)
    return ds.xy(cfg.search.target, search_columns(cfg, ds.manifest)), ds.manifest


def stage_search(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    (X, y, columns), manifest = _data(cfg, run)
    t0 = time.perf_counter()
    front, searches = search_front(X, y, columns, cfg.search, place, threads=cfg.threads or None)
    write_json(run.stage("search") / "front.json", {
        "columns": columns, "target": cfg.search.target, "rows": len(y), "searches": searches,
        "equations": [e.to_dict() for e in front]})
    return {"equations": len(front), "searches": len(searches), "rows": len(y), "columns": len(columns),
            "seconds": round(time.perf_counter() - t0, 1)}


def stage_fit(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    (X, y, columns), manifest = _data(cfg, run)
    test = _data(cfg, run, "test")
    front = [Equation.from_dict(d) for d in read_json(run.stage("search") / "front.json")["equations"]]
    t0 = time.perf_counter()
    candidates = fit_front(front, X, y, columns, cfg.search, cfg.fit.method, cfg.fit.steps,
                           test=(test[0][0], test[0][1]) if test else None, update_of_raw=manifest.get("update_of_raw"))
    write_json(run.stage("fit") / "candidates.json", {"columns": columns, "candidates": candidates})
    return {"candidates": len(candidates), "seconds": round(time.perf_counter() - t0, 1)}


def stage_select(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    candidates = read_json(run.stage("fit") / "candidates.json")["candidates"]
    sel, t0 = cfg.select, time.perf_counter()
    losses = curves = None
    pool = eligible(candidates, sel, final_size(cfg))
    if sel.by == "rollout":
        steps = sel.steps or run.manifest("meta_train")["horizon"]
        specs = {f"candidate {i} ({c['complexity']} nodes)":
                 OptimizerSpec("symbolic", {"equation": c["update_rule"]["equation"]}) for i, c in enumerate(pool)}
        by_candidate = list(meta_valid_rollouts(cfg, place, specs, steps,
                                                tuple(range(SELECT_SEED0, SELECT_SEED0 + sel.seeds))).values())
        losses = [final_geometric(runs) for runs in by_candidate]
        curves = [runs[0] for runs in by_candidate]  # the plot shows the task's own runs
        for c, loss in zip(pool, losses):
            c["rollout_loss"] = loss
    index = choose(as_equations(pool), sel, losses)
    chosen = pool[index]
    folder = run.stage("select")
    doc = {"by": sel.by, "index": index, "chosen": {k: v for k, v in chosen.items() if k != "update_rule"},
           "update_rule": chosen["update_rule"], "candidates": pool}
    write_json(folder / "equations.json", doc)
    plots = _select_plots(cfg, run, folder, pool, index, curves)
    return {"by": sel.by, "index": index, "equation": chosen["equation"], "complexity": chosen["complexity"],
            "r2": chosen["r2"], "r2_new_rollouts": chosen["r2_new_rollouts"], "rollout_loss": chosen.get("rollout_loss"),
            "update_rule": chosen["update_rule"]["equation"],
            "update_rule_complexity": chosen["update_rule"]["complexity"],
            "seconds": round(time.perf_counter() - t0, 1), "plots": plots}


def final_size(cfg: PipelineConfig) -> Callable[[dict], int] | None:
    """How many nodes a candidate's update rule will have after the meta-tune stage (``tuning_source``);
    None where that stage leaves the rule as selected."""
    mt = cfg.meta_tune
    if "meta_tune" not in cfg.stages or not mt.enabled or mt.decay is None:
        return None
    return lambda c: tuning_source(mt, Equation.from_dict(c["update_rule"])).complexity


def tuning_source(mt: MetaTuneConfig, rule: Equation) -> Equation:
    """The rule meta-tuning starts from: ``rule`` times its decay factor where ``mt.decay`` is set."""
    from l2o.optim.tune import with_decay

    return with_decay(rule, mt.decay) if mt.decay is not None else rule


def _select_plots(cfg, run, folder: Path, pool, index, curves) -> list[str]:
    from l2o.distill.plots import candidates_plot, response_plot

    (X, y, columns), _ = _data(cfg, run)
    chosen = Equation.from_dict({"equation": pool[index]["equation"]})
    paths = [response_plot(chosen, X, y, columns, folder / "response.png", f"chosen: {pool[index]['complexity']} nodes")]
    if curves is not None:
        paths.append(candidates_plot(pool, index, folder / "candidates.png"))
        paths.append(plot_curves(curves, folder / "rollouts.png", title="candidates on meta_valid"))
    return [str(p) for p in paths]


def stage_meta_tune(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    from l2o.optim.export import export_optimizer

    selected = Equation.from_dict(read_json(run.stage("select") / "equations.json")["update_rule"])
    folder = run.stage("meta_tune")
    mt = cfg.meta_tune
    beta, eps = cfg.l2o.beta, cfg.l2o.eps
    if not mt.enabled or not selected.expr.free_symbols:
        final, result = selected, {"tuned": None, "replaced": False}
    else:
        result = place.meta_tune(tuning_source(mt, selected), cfg.task, meta_config(mt), cfg.device, cfg.dtype)
        tuned = Equation.from_dict(result["tuned"])
        steps, seeds = mt.horizons[-1], tuple(range(COMPARE_SEED0, COMPARE_SEED0 + mt.compare_seeds))
        losses = compare_rules(cfg, place, {"tuned": tuned, "selected": selected}, steps, seeds)
        result["compare"] = {"split": "meta_valid", "seeds": list(seeds), "steps": steps, "final_loss": losses}
        result["replaced"] = bool(losses["tuned"] < losses["selected"])
        final = tuned if result["replaced"] else selected
    doc = {**result, "selected": selected.to_dict(), "update_rule": final.to_dict()}
    write_json(folder / "equation.json", doc)
    (folder / "optimizer.py").write_text(export_optimizer(final, name="MetaTunedRule", beta=beta, eps=eps))
    return {k: result.get(k) for k in ("replaced", "eval_loss_before", "eval_loss_after", "compare", "epochs")
            } | {"update_rule": final.text}


def compare_rules(cfg: PipelineConfig, place: Placement, rules: dict[str, Equation], steps: int,
                  seeds: tuple[int, ...]) -> dict[str, float]:
    """Each rule's final loss on the meta_valid optimizees ``seeds`` (the stage gives COMPARE_SEED0, …:
    ones that neither selection nor meta-tuning saw) of the task and its family (``meta_valid_jobs``), the
    geometric mean over their runs of ``steps`` steps (``final_geometric``). Meta-tuning keeps the
    constants that did best on its own evaluation optimizees, so on those the tuned rule looks better than
    it is; fresh ones judge the two alike."""
    specs = {name: OptimizerSpec("symbolic", {"equation": rule.text}) for name, rule in rules.items()}
    return {name: final_geometric(runs)
            for name, runs in meta_valid_rollouts(cfg, place, specs, steps, seeds).items()}


def meta_valid_rollouts(cfg: PipelineConfig, place: Placement, specs: dict[str, OptimizerSpec], steps: int,
                        seeds: tuple[int, ...]) -> dict[str, list[Curves]]:
    """Every optimizer of ``specs`` (label → spec) on the meta_valid optimizees of ``meta_valid_jobs``, all
    in one batch of rollouts: per label, its Curves, the task's own first."""
    groups = {label: meta_valid_jobs(cfg, spec, label, steps, seeds) for label, spec in specs.items()}
    done = iter(place.rollouts([j for g in groups.values() for j in g], cfg.device, cfg.dtype))
    return {label: [next(done) for _ in g] for label, g in groups.items()}


def meta_valid_jobs(cfg: PipelineConfig, spec: OptimizerSpec, label: str, steps: int,
                    seeds: tuple[int, ...]) -> list[RolloutJob]:
    """The rollouts that judge one optimizer on meta_valid: the i-th of ``seeds`` goes to member i mod m of
    the task and ``meta_train.family`` (m of them, the task first), the round meta-training goes, so a rule
    is chosen for the optimizees the LSTM was trained on, not for one of them. One job per member that
    gets a seed; without a family, one job of every seed on the task."""
    members = (cfg.task, *cfg.meta_train.family)
    return [RolloutJob(task, spec, label if k == 0 else f"{label} on {task.label}", steps, seeds[k::len(members)],
                       "meta_valid")
            for k, task in enumerate(members) if seeds[k::len(members)]]


EVAL_LABELS = {"lstm": "LSTM", "distilled": "distilled rule", "tuned": "meta-tuned rule"}


def stage_evaluate(cfg: PipelineConfig, run: Run, place: Placement) -> dict[str, Any]:
    ev = cfg.evaluate
    seeds = tuple(range(ev.seeds))
    ours = [("lstm", OptimizerSpec("lstm", {"checkpoint": checkpoint_of(run)}))]
    if run.done("select"):
        ours.append(("distilled", OptimizerSpec("symbolic", {"equation": str(run.stage("select") / "equations.json")})))
    if run.done("meta_tune") and read_json(run.stage("meta_tune") / "equation.json").get("tuned"):
        tuned = read_json(run.stage("meta_tune") / "equation.json")["tuned"]["equation"]
        ours.append(("tuned", OptimizerSpec("symbolic", {"equation": tuned})))
    jobs = [RolloutJob(cfg.task, spec, EVAL_LABELS[key], ev.steps, seeds) for key, spec in ours]
    for text in ev.baselines:
        spec = OptimizerSpec.parse(text)
        jobs.append(RolloutJob(cfg.task, spec, spec.label, ev.steps, seeds))
    grids = {}
    for text in ev.tune:
        spec = OptimizerSpec.parse(text)
        grids[text] = [RolloutJob(cfg.task, spec.with_(lr=lr), f"tuned {spec.with_(lr=lr).label}", ev.steps, seeds)
                       for lr in ev.lr_grid]
    curves = place.rollouts(jobs + [j for grid in grids.values() for j in grid], cfg.device, cfg.dtype)
    fixed, rest = curves[:len(jobs)], curves[len(jobs):]
    for grid in grids.values():
        runs, rest = rest[:len(grid)], rest[len(grid):]
        best = min(runs, key=lambda c: c.final())
        best.extra["tuned_over_lrs"] = list(ev.lr_grid)
        fixed.append(best)
    folder = run.stage("evaluate")
    folder.mkdir(parents=True, exist_ok=True)
    equations = {EVAL_LABELS[key]: spec.equation for key, spec in ours if spec.equation}
    task = cfg.task.build()
    save_json(fixed, folder / "results.json", task=task.describe(), steps=ev.steps, seeds=list(seeds),
              equations=equations)
    save_csv(fixed, folder / "curves.csv")
    plot_curves(fixed, folder / "curves.png", title=f"{cfg.task.label}: mean ± std over {ev.seeds} seeds")
    table = format_table(fixed, equations)
    (folder / "table.txt").write_text(table + "\n")
    return {"final_loss": {c.label: c.summary()["final_mean"] for c in fixed}, "table": table,
            "plot": str(folder / "curves.png")}


STAGE_FUNCTIONS = {"meta_train": stage_meta_train, "record": stage_record, "search": stage_search,
                   "fit": stage_fit, "select": stage_select, "meta_tune": stage_meta_tune, "evaluate": stage_evaluate}


def run_pipeline(cfg: PipelineConfig, place: Placement | None = None, run: Run | None = None,
                 echo=print) -> dict[str, Any]:
    """Run the configured stages of ``cfg`` in its run folder (``run``, default ``Run.of(cfg)``); a stage
    already done is skipped. Returns the report (also written as ``report.json``); ``this_call`` says what
    this call ran or skipped."""
    place = place or Placement()
    run = run or Run.of(cfg)
    run.root.mkdir(parents=True, exist_ok=True)
    if (run.root / "config.json").is_file():
        _check_same_method(run, cfg)
    run.save_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    this_call: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in cfg.stages:
        if run.done(name):
            this_call[name] = {"skipped": True}
            echo(f"[pipeline] {name}: done before, skipped")
            continue
        echo(f"[pipeline] {name}: running ({place.name})")
        started = time.perf_counter()
        manifest = STAGE_FUNCTIONS[name](cfg, run, place)
        manifest["stage_seconds"] = round(time.perf_counter() - started, 1)
        run.finish(name, manifest)
        this_call[name] = {"skipped": False, "seconds": manifest["stage_seconds"]}
        echo(f"[pipeline] {name}: done in {manifest['stage_seconds']} s")
    report = {"run_id": run.root.name, "run": str(run.root), "placement": place.name,
              "seconds": round(time.perf_counter() - t0, 1),
              "stages": {name: run.manifest(name) for name in STAGE_FUNCTIONS if run.done(name)}}
    write_json(run.root / "report.json", report)
    return {**report, "this_call": this_call}


def _check_same_method(run: Run, cfg: PipelineConfig) -> None:
    """A run continues only with the config it started with (where and which stages may change)."""
    before = run.config()
    loose = {"stages": cfg.stages, "threads": cfg.threads, "run_id": cfg.run_id, "storage": cfg.storage}
    if dataclasses.replace(before, **loose) != cfg:
        raise ValueError(f"{run.root} was started with another config; use another run_id, or the same settings "
                         f"(see {run.root / 'config.json'})")
