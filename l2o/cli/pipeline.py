"""``l2o pipeline``: the whole method in this process — meta-train → record → search → fit → select →
meta-tune → evaluate — in one run folder; rerun with the same ``--run-id`` to continue."""

from __future__ import annotations

import argparse
import json

from l2o.cli.options import add_config_flags, add_task, config_from_args, task_spec
from l2o.config import read_config_file
from l2o.pipeline.config import PipelineConfig


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the whole method (or some of its stages) in this process",
                       description="Every stage of the method under <storage>/runs/<run id>/, each skipped when its "
                                   "artifact exists. Settings: --config FILE (JSON or YAML with the fields of "
                                   "l2o.pipeline.PipelineConfig), then the flags below. Prints the evaluation table "
                                   "and, as its last line, one JSON object.")
    p.add_argument("--config", default=None, help="a PipelineConfig as JSON or YAML (default: the defaults)")
    add_task(p)
    add_config_flags(p, PipelineConfig, skip=("task",))
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace, **extra) -> PipelineConfig:
    base = read_config_file(args.config)
    task = task_spec(args, base.get("task"))
    return config_from_args(PipelineConfig, args, base=base, skip=("task",), task={"name": task.name,
                                                                                 "options": task.options}, **extra)


def run(args: argparse.Namespace) -> int:
    from l2o.pipeline import Placement, run_pipeline

    report = run_pipeline(build_config(args), Placement(progress=not args.no_progress))
    print_report(report)
    return 0


def print_report(report: dict) -> None:
    stages = report["stages"]
    if "evaluate" in stages:
        print(stages["evaluate"]["table"])
    if "select" in stages:
        s = stages["select"]
        nodes = s.get("update_rule_complexity", s["complexity"])  # runs of earlier versions: the searched equation's
        print(f"distilled rule ({nodes} nodes, chosen by {s['by']}; R² {_f(s['r2'])} on held-out rows, "
              f"{_f(s['r2_new_rollouts'])} on new rollouts): {s['update_rule']}")
    if "meta_tune" in stages:
        t = stages["meta_tune"]
        kept = " (not better on fresh meta_valid optimizees: the distilled rule is kept)"
        print(f"meta-tuned rule{'' if t.get('replaced') else kept}"
              f": {t['update_rule']}")
    print(f"run folder: {report['run']}")
    summary = {"run": report["run"], "seconds": report["seconds"], "this_call": report["this_call"]}
    if "evaluate" in stages:
        summary["final_loss"] = stages["evaluate"]["final_loss"]
    if "select" in stages:
        summary["equation"] = stages["select"]["update_rule"]
    print(json.dumps(summary, default=str))


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
