"""Transfer: learned optimizers and their rules on optimizees they were not trained on.

For each model (DM, RP, RP_si) the whole method runs once on the source task (``l2o pipeline`` with
``--config``, the model replaced; a run folder that exists continues): meta-training, recording,
search, selection by rollout and meta-tuning. Then, on held-out data (the ``eval`` split) of

- ``source``: the source task, for ``--steps`` steps;
- ``mnist_mlp_deep`` and ``mnist_cnn``;
- ``activation``: the source task with another activation (``--activation``);
- ``long``: the source task for ``--long`` × ``--steps`` steps;

it runs each model's LSTM, its selected rule, its meta-tuned rule (on ``source`` also the rule R² would
have chosen), Adam lr 1e-3 and Adam tuned over the 5-point grid (``l2o.eval.tuning.DEFAULT_GRID``,
best final loss), ``--seeds`` seeds each. Rollouts run in ``--workers`` processes of one thread.

    python benchmarks/transfer.py [--config configs/demo.yaml] [--models dm,rp,rp_si] [--seeds 5]
                                  [--steps 1000] [--long 5] [--workers 2] [--out DIR] [--smoke]

Prints the machine, one table of final loss (mean ± std) per task, and writes a plot per task and
``results.json`` under ``--out``. The last line is one JSON object: ``{"models": {"<model>": {"final_rule":
…, "tasks": {"<task>": {"rule_vs_lstm": …, "rule_vs_adam": …, "rule_vs_tuned_adam": …,
"rule_complexity": …}}}}}``: final-loss ratios of the model's final rule (the meta-tuned one where it
replaced the selected one on ``meta_valid``, else the selected one); null where a side diverged.
``--smoke`` runs every part at its smallest size (pipeline smoke settings, 2 seeds, 30 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch

from l2o import machine
from cluster.config import PipelineJob
from l2o.config import from_dict, merge, read_config_file
from l2o.distill.select import SelectConfig, choose
from l2o.eval.optimizers import OptimizerSpec
from l2o.eval.report import format_table, plot_curves, save_json
from l2o.eval.rollout import Curves
from l2o.eval.tuning import DEFAULT_GRID
from l2o.expr import Equation
from l2o.pipeline import PipelineConfig, RolloutJob, run_pipeline
from l2o.pipeline.distill import as_equations
from l2o.pipeline.placement import rollout_job
from l2o.pipeline.run import Run, read_json
from l2o.pipeline.stages import checkpoint_of
from l2o.tasks import TaskSpec

MODELS = ("dm", "rp", "rp_si")


def _quiet(*_args) -> None:
    pass


def pipeline_config(base: dict, model: str, storage: Path, smoke: bool) -> PipelineConfig:
    data = merge(base, PipelineJob.smoke()["pipeline"]) if smoke else dict(base)
    data = merge(data, {"l2o": {"model": model}, "run_id": f"transfer-{model}{'-smoke' if smoke else ''}",
                        "storage": str(storage), "threads": 1,
                        "stages": ["meta_train", "record", "search", "fit", "select", "meta_tune"]})
    return from_dict(PipelineConfig, data)


def train(config: PipelineConfig) -> str:
    """One model's method on the source task, in a worker process; its run folder."""
    torch.set_num_threads(1)
    report = run_pipeline(config, echo=_quiet)
    return report["run"]


def run_rollout(job: RolloutJob, dtype: str) -> dict:
    torch.set_num_threads(1)
    return rollout_job(job, "cpu", dtype).to_dict()


def rules_of(run: Run) -> dict:
    """The selected rule, the R²-chosen one, the meta-tuned one (if any) and the final one, as update rules."""
    select = read_json(run.stage("select") / "equations.json")
    pool = select["candidates"]
    by_r2 = pool[choose(as_equations(pool), SelectConfig(by="r2"))]
    tuned = read_json(run.stage("meta_tune") / "equation.json")
    return {"selected": select["update_rule"]["equation"], "selected_complexity": select["update_rule"]["complexity"],
            "r2": by_r2["update_rule"]["equation"], "r2_complexity": by_r2["update_rule"]["complexity"],
            "tuned": (tuned.get("tuned") or {}).get("equation"), "final": tuned["update_rule"]["equation"],
            "replaced": bool(tuned.get("replaced"))}


def tasks_of(source: TaskSpec, activation: str, steps: int, long: int) -> dict[str, tuple[TaskSpec, int]]:
    other = TaskSpec(source.name, {**source.options, "activation": activation})
    return {"source": (source, steps), "mnist_mlp_deep": (TaskSpec("mnist_mlp_deep"), steps),
            "mnist_cnn": (TaskSpec("mnist_cnn"), steps), "activation": (other, steps), "long": (source, steps * long)}


def ratio(a: float, b: float) -> float | None:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml", help="the pipeline config every model starts from")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, among {', '.join(MODELS)}")
    ap.add_argument("--seeds", type=int, default=5, help="optimizees per optimizer and task (default: 5)")
    ap.add_argument("--steps", type=int, default=1000, help="steps per run (default: 1000)")
    ap.add_argument("--long", type=int, default=5, help="the long task's horizon, in multiples of --steps (default: 5)")
    ap.add_argument("--activation", default="tanh", help="the activation of the source task's variant (default: tanh)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: 2)")
    ap.add_argument("--out", default="transfer-results", help="folder of the runs, plots and results.json")
    ap.add_argument("--smoke", action="store_true", help="every part at its smallest size")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    if not models or any(m not in MODELS for m in models):
        ap.error(f"--models: comma-separated among {', '.join(MODELS)}, got {args.models!r}")
    if min(args.seeds, args.steps, args.long, args.workers) < 1:
        ap.error("--seeds, --steps, --long and --workers must be >= 1")
    seeds, steps = (2, 30) if args.smoke else (args.seeds, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine.summary(), flush=True)

    base = read_config_file(args.config)
    configs = {m: pipeline_config(base, m, out / "storage", args.smoke) for m in models}
    source = configs[models[0]].task
    dtype = configs[models[0]].dtype
    tasks = tasks_of(source, args.activation, steps, args.long)
    run_seeds = tuple(range(seeds))
    pending: list[tuple[str, str, Future]] = []  # (task, key, rollout)

    def submit(model: str | None) -> None:
        """The rollouts of one model's optimizers (None: the baselines) on every task."""
        for name, (task, n) in tasks.items():
            add = lambda key, spec, label: pending.append(  # noqa: E731
                (name, key, pool.submit(run_rollout, RolloutJob(task, spec, label, n, run_seeds), dtype)))
            if model is None:
                add("adam", OptimizerSpec("adam", {"lr": 1e-3}), "adam lr=0.001")
                for lr in DEFAULT_GRID:
                    add(f"adam@{lr:g}", OptimizerSpec("adam", {"lr": lr}), f"tuned adam lr={lr:g}")
                continue
            m, r = model, rules[model]
            add(f"{m}/lstm", OptimizerSpec("lstm", {"checkpoint": checkpoint_of(runs[m])}), f"{m} LSTM")
            add(f"{m}/selected", OptimizerSpec("symbolic", {"equation": r["selected"]}), f"{m} rule")
            if r["tuned"]:
                add(f"{m}/tuned", OptimizerSpec("symbolic", {"equation": r["tuned"]}), f"{m} tuned rule")
            if name == "source" and r["r2"] != r["selected"]:
                add(f"{m}/r2", OptimizerSpec("symbolic", {"equation": r["r2"]}), f"{m} rule (R²)")

    runs: dict[str, Run] = {}
    rules: dict[str, dict] = {}
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        training = {pool.submit(train, config): m for m, config in configs.items()}
        submit(None)  # the baselines need no training: they fill the workers meanwhile
        for done in as_completed(training):
            m = training[done]
            runs[m] = Run(done.result())
            rules[m] = rules_of(runs[m])
            print(f"{m}: selected rule ({rules[m]['selected_complexity']} nodes) {rules[m]['selected']}\n"
                  f"{m}: final rule{' (meta-tuned)' if rules[m]['replaced'] else ''} {rules[m]['final']}", flush=True)
            submit(m)
        curves = [(name, key, Curves.from_dict(f.result())) for name, key, f in pending]

    summary: dict = {"models": {m: {"final_rule": rules[m]["final"], "tasks": {}} for m in models}}
    for name in tasks:
        here = {key: c for n, key, c in curves if n == name}
        best_adam = min((c for key, c in here.items() if key.startswith("adam@")), key=lambda c: c.final())
        shown = [c for m in models for key, c in here.items() if key.startswith(f"{m}/")] + [here["adam"], best_adam]
        print(f"\n== {name}: {tasks[name][0].label}, {tasks[name][1]} steps, {seeds} seeds", flush=True)
        print(format_table(shown))
        plot_curves(shown, out / f"{name}.png", title=f"{name}: {tasks[name][0].label}, mean ± std over {seeds} seeds")
        for m in models:
            final_key = f"{m}/tuned" if rules[m]["replaced"] else f"{m}/selected"
            rule = here[final_key].final()
            complexity = Equation.from_dict({"equation": rules[m]["final"]}).complexity
            summary["models"][m]["tasks"][name] = {
                "rule_vs_lstm": ratio(rule, here[f"{m}/lstm"].final()), "rule_vs_adam": ratio(rule, here["adam"].final()),
                "rule_vs_tuned_adam": ratio(rule, best_adam.final()), "rule_complexity": complexity}
    save_json([c for _, _, c in curves], out / "results.json", tasks={n: t.label for n, (t, _) in tasks.items()},
              rules=rules, ratios=summary)
    print("\n" + "\n".join(f"{m} final rule: {rules[m]['final']}" for m in models))
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
