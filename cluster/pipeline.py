"""The whole method as one run: meta-train → generate → distill → fit → meta-tune → evaluate.

Everything lands under ``<storage>/pipeline/<run_id>/``; a stage whose artifact is already there is
skipped, so a run that stopped half-way continues where it stopped:

    meta_train/checkpoint.pt    Ray Train (cluster.train)
    dataset/manifest.json       Ray actors (cluster.generate)
    distill/best.json           Ray Tune over SR settings (cluster.distill)
    fit/rule.json               the best equation's constants refitted on all rows; its update rule
    meta_tune/equation.json     the rule's constants meta-learned (a Ray task); optimizer.py beside it
    report.json, curves.png     LSTM, distilled rule, tuned rule, Adam and tuned Adam on held-out data
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from cluster.config import PipelineJob, storage_uri


def _stage(name: str, artifact: Path, stages: dict[str, Any]) -> bool:
    """True when ``name`` must run; records it as skipped otherwise."""
    if artifact.exists():
        stages[name] = {"skipped": True, "artifact": str(artifact)}
        print(f"[pipeline] {name}: {artifact} exists, skipped", flush=True)
        return False
    print(f"[pipeline] {name}: running", flush=True)
    stages[name] = {"skipped": False, "artifact": str(artifact), "started": time.time()}
    return True


def _done(name: str, stages: dict[str, Any], **extra: Any) -> None:
    stages[name].update(extra, seconds=round(time.time() - stages[name].pop("started"), 2))


def _fit_rule(best_path: Path, dataset: Path, checkpoint: Path, out: Path) -> dict[str, Any]:
    from l2o.distill import Equation, parse_equation
    from l2o.distill.fit import fit_constants
    from l2o.distill.record import load_dataset
    from l2o.learned import l2o_from_checkpoint

    best = json.loads(best_path.read_text())
    target = best["meta"]["trial_config"].get("target", "raw")
    expr = parse_equation(best["equation"])
    ds = load_dataset(dataset)
    used = {str(s) for s in expr.free_symbols}
    X, y, columns = ds.xy(target, [c for c in ds.manifest["feature_columns"] if c in used] or None)
    seed = best["meta"]["trial_config"].get("seed", 0)  # the trial's: the same held-out rows as its search
    fitted, report = fit_constants(Equation(expr), X, y, columns, seed=seed)
    l2o = l2o_from_checkpoint(checkpoint)
    rule = Equation(l2o.squash_expr(fitted.expr) if target == "raw" else fitted.expr,
                    r2=fitted.r2, meta={"from": str(best_path), "r2_before_fit": report.r2_before})
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"equation": fitted.to_dict(), "update_rule": rule.to_dict(), **rule.to_dict()}
    out.write_text(json.dumps(doc, indent=1, default=str))
    return {"r2": fitted.r2, "equation": fitted.text, "update_rule": rule.text}


def _meta_tune_task(rule_path: str, task_spec: dict[str, Any], config: dict[str, Any], out: str) -> dict[str, Any]:
    import torch

    from l2o.meta import MetaTrainConfig
    from l2o.optim.export import export_optimizer
    from l2o.optim.symbolic import load_equation, meta_tune
    from l2o.tasks import make_task

    torch.set_num_threads(1)
    task = make_task(task_spec["name"], **task_spec["options"])
    tuned, state = meta_tune(load_equation(rule_path), task, MetaTrainConfig(**config))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "optimizer.py").write_text(export_optimizer(tuned, name="MetaTunedRule"))
    (folder / "equation.json").write_text(json.dumps({**tuned.to_dict(), "update_rule": tuned.to_dict(),
                                                      "history": state.history}, indent=1, default=str))
    return {"equation": tuned.text, "eval_loss_before": tuned.meta["eval_loss_before"],
            "eval_loss_after": tuned.meta["eval_loss_after"]}


def _evaluate_task(task_spec: dict[str, Any], specs: list[str], steps: int, seeds: int, out: str) -> list[dict]:
    import torch

    from l2o.eval import OptimizerSpec, plot_curves, rollout, save_json, tune_lr
    from l2o.tasks import make_task

    torch.set_num_threads(1)
    task = make_task(task_spec["name"], **task_spec["options"])
    seed_list = list(range(seeds))
    curves = [rollout(task, OptimizerSpec.parse(s), steps, seed_list, progress=False) for s in specs]
    best, _ = tune_lr(task, OptimizerSpec.parse("adam"), steps, seed_list, progress=False)
    curves.append(best)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    save_json(curves, folder / "results.json", task=task.describe(), steps=steps, seeds=seed_list)
    plot_curves(curves, folder / "curves.png", title=f"{task.name}: mean ± std over {seeds} seeds")
    return [c.summary() for c in curves]


def run_pipeline(job: PipelineJob) -> dict[str, Any]:
    import ray

    from cluster.distill import distill
    from cluster.generate import generate
    from cluster.train import CHECKPOINT_FILE, meta_train

    root = storage_uri(job.storage)
    if "://" in root:
        raise ValueError("the pipeline keeps its run folder on a filesystem path; set L2O_STORAGE to a path")
    run_id = job.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run = Path(root) / "pipeline" / run_id
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(job), indent=1, default=str))
    stages: dict[str, Any] = {}
    t0 = time.time()
    mt = job.meta_train
    task_spec = {"name": mt.task, "options": dict(mt.task_options)}

    checkpoint = run / "meta_train" / CHECKPOINT_FILE
    if _stage("meta_train", checkpoint, stages):
        result = meta_train(dataclasses.replace(mt, storage=str(run), name="ray_train"))
        if result.error:
            raise RuntimeError(f"meta_train failed: {result.error}")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(result.checkpoint.path) / CHECKPOINT_FILE, checkpoint)
        _done("meta_train", stages, metrics=result.metrics)

    dataset = run / "dataset"
    if _stage("generate", dataset / "manifest.json", stages):
        manifest = generate(dataclasses.replace(job.generate, checkpoint=str(checkpoint), out=str(dataset),
                                                task=mt.task, task_options=dict(mt.task_options)), progress=False)
        _done("generate", stages, rows=manifest["rows"], actors=manifest["actors"])

    best_path = run / "distill" / "best.json"
    if _stage("distill", best_path, stages):
        best = distill(dataclasses.replace(job.distill, dataset=str(dataset), out=str(run / "distill")))
        _done("distill", stages, r2=best["r2"], equation=best["equation"], trials=best["trials"])

    rule_path = run / "fit" / "rule.json"
    if _stage("fit", rule_path, stages):
        _done("fit", stages, **_fit_rule(best_path, dataset, checkpoint, rule_path))

    tuned_path = run / "meta_tune" / "equation.json"
    if _stage("meta_tune", tuned_path, stages):
        task_ref = ray.remote(num_cpus=1)(_meta_tune_task).remote(str(rule_path), task_spec, job.meta_tune,
                                                                  str(tuned_path.parent))
        _done("meta_tune", stages, **ray.get(task_ref))

    report_path = run / "report.json"
    if _stage("evaluate", report_path, stages):
        specs = [f"lstm:checkpoint={checkpoint}", f"symbolic:equation={rule_path}",
                 f"symbolic:equation={tuned_path}", "adam:lr=1e-3"]
        summary = ray.get(ray.remote(num_cpus=1)(_evaluate_task).remote(
            task_spec, specs, int(job.evaluate["steps"]), int(job.evaluate["seeds"]), str(run / "evaluate")))
        names = ["lstm", "distilled rule", "meta-tuned rule", "adam", "tuned adam"]
        _done("evaluate", stages, final_loss={n: s["final_mean"] for n, s in zip(names, summary)})
        report = {"run_id": run_id, "run": str(run), "seconds": round(time.time() - t0, 1), "stages": stages,
                  "equations": {"distilled": json.loads(best_path.read_text()),
                                "fitted": json.loads(rule_path.read_text())["update_rule"],
                                "meta_tuned": json.loads(tuned_path.read_text())["update_rule"]},
                  "evaluation": dict(zip(names, summary)), "plots": [str(run / "evaluate" / "curves.png")]}
        report_path.write_text(json.dumps(report, indent=1, default=str))
    return {**json.loads(report_path.read_text()), "this_call": stages}
