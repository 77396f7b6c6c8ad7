"""``l2o distill``: a meta-trained checkpoint → rollout datasets → symbolic regression → fitted candidates →
the selected rule (the pipeline's record, search, fit and select stages); ``l2o sanity``: the paper's
sanity table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from l2o.cli.options import add_common, add_config_flags, add_task, config_from_args, task_spec
from l2o.config import read_config_file
from l2o.distill.engines import SearchConfig
from l2o.distill.select import SelectConfig
from l2o.pipeline.config import FitConfig, RecordStage

SECTIONS = {"record": RecordStage, "search": SearchConfig, "fit": FitConfig, "select": SelectConfig}


def add(sub: argparse._SubParsersAction) -> None:
    _add_sanity(sub)
    p = sub.add_parser("distill", help="distil a meta-trained LSTM optimizer into an update rule",
                       description="Roll the checkpoint's optimizer out on the held-out split, record windows of its "
                                   "features and outputs, search equations, fit every candidate's constants, and "
                                   "select one (by how it optimizes, or by R²). Writes a run folder; prints the rule "
                                   "and, as its last line, one JSON object.")
    p.add_argument("checkpoint", help="a checkpoint written by l2o meta-train")
    p.add_argument("--config", default=None, help="JSON or YAML with record/search/fit/select sections")
    add_task(p, default=None)
    for name, cls in SECTIONS.items():
        add_config_flags(p, cls, prefix=f"{name}.")
    p.add_argument("--out", default=None, help="run folder (default: <storage>/runs/distill-<checkpoint folder name>)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from l2o.learned import load_checkpoint
    from l2o.pipeline import PipelineConfig, Placement, Run, run_pipeline
    from l2o.storage import storage_root

    base = read_config_file(args.config)
    doc = load_checkpoint(args.checkpoint)
    sections = {name: config_from_args(cls, args, base=base.get(name), prefix=f"{name}.")
                for name, cls in SECTIONS.items()}
    task = task_spec(args, doc["task"])
    folder = Path(args.out) if args.out else (storage_root(args.storage) / "runs" /
                                              f"distill-{Path(args.checkpoint).resolve().parent.name}")
    cfg = PipelineConfig(run_id=folder.name, storage=args.storage, checkpoint=str(Path(args.checkpoint).resolve()),
                         stages=("meta_train", "record", "search", "fit", "select"), device=args.device,
                         dtype=args.dtype, threads=args.threads or 0, task=task, **sections)
    report = run_pipeline(cfg, Placement(progress=not args.no_progress), run=Run(folder))
    s = report["stages"]["select"]
    print(f"equation   {s['equation']}  ({s['complexity']} nodes, chosen by {s['by']})")
    print(f"update     {s['update_rule']}")
    print(f"R² {s['r2']} on held-out rows, {s['r2_new_rollouts']} on new rollouts; rollout loss {s['rollout_loss']}")
    print(json.dumps({"run": report["run"], **{k: s[k] for k in ("equation", "update_rule", "complexity", "r2",
                                                              "r2_new_rollouts", "by", "rollout_loss")},
                      "search_seconds": report["stages"]["search"]["seconds"]}, default=str))
    return 0


def _add_sanity(sub: argparse._SubParsersAction) -> None:
    from l2o.distill.engines import ENGINES
    from l2o.distill.sanity import CASES

    p = sub.add_parser("sanity", help="recover known update rules (SGD, momentum, Adam …) by symbolic regression",
                       description="Synthetic gradient windows of 20 lags; for each known rule, symbolic regression "
                                   "searches for it. Prints target, recovered equation, R² and seconds beside the "
                                   "paper's figures; the last line is JSON.")
    p.add_argument("--cases", default=",".join(c.name for c in CASES),
                   help=f"comma-separated cases (default: all: {', '.join(c.name for c in CASES)})")
    p.add_argument("--engine", default="operon", choices=ENGINES, help="SR engine (default: operon)")
    p.add_argument("--rows", type=int, default=5000, help="synthetic windows per case (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="data and search seed (default: 0)")
    add_common(p)
    p.set_defaults(func=_run_sanity)


def _run_sanity(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from l2o.distill.sanity import format_rows, run_sanity, summary_json

    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    bar = tqdm(total=len(names), desc="sanity", unit="case", disable=args.no_progress)
    rows = run_sanity(names, engine=args.engine, rows=args.rows, seed=args.seed, progress=lambda r: bar.update(1))
    bar.close()
    print(format_rows(rows))
    print(summary_json(rows))
    return 0
