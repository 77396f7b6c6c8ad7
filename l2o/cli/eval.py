"""``l2o eval``: optimizers side by side on a task, mean ± std over seeds of the held-out split."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from l2o.cli.options import add_common, add_task, task_spec


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare optimizers on a task (mean ± std over seeds)",
                       description="Roll each optimizer on fresh optimizees (seeds 0..K-1) of the held-out "
                                   "'eval' split and save curves (JSON, CSV) and a plot (PNG).")
    add_task(p)
    p.add_argument("--optimizer", action="append", default=None, metavar="SPEC",
                   help="name[:key=value,...], e.g. adam:lr=1e-3, sgdm:lr=0.05, rmsprop, lstm:checkpoint=FILE, "
                        "symbolic:equation=FILE, or module.path:Class,lr=0.1 (repeatable; default: adam, sgd, rmsprop)")
    p.add_argument("--tune", action="append", default=[], metavar="SPEC",
                   help="also add this optimizer tuned over the --lr-grid (repeatable), e.g. adam")
    p.add_argument("--lr-grid", default="1e-4,3e-4,1e-3,3e-3,1e-2",
                   help="comma-separated learning rates for --tune (default: 1e-4,3e-4,1e-3,3e-3,1e-2)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default: 300)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds K, runs use 0..K-1 (default: 3)")
    p.add_argument("--out", default=None, help="output folder (default: <storage>/eval/<task>-<UTC time>)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from l2o.eval import OptimizerSpec, format_table, plot_curves, rollout, save_csv, save_json, tune_lr
    from l2o.storage import storage_root

    specs = [OptimizerSpec.parse(s) for s in (args.optimizer or ["adam", "sgd", "rmsprop"])]
    tuned = [OptimizerSpec.parse(s) for s in args.tune]
    lrs = [float(x) for x in args.lr_grid.split(",") if x.strip()]
    task = task_spec(args).build(args.device, getattr(torch, args.dtype))
    out = Path(args.out) if args.out else (
        storage_root(args.storage) / "eval" / f"{task.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    progress = not args.no_progress
    curves = [rollout(task, spec, args.steps, seeds, progress=progress) for spec in specs]
    for spec in tuned:
        best, _ = tune_lr(task, spec, args.steps, seeds, lrs=lrs, progress=progress)
        curves.append(best)
    equations = {spec.label: spec.equation for spec in specs if spec.equation}
    meta = {"task": task.describe(), "steps": args.steps, "seeds": seeds, "command": sys.argv, "equations": equations}
    save_json(curves, out / "results.json", **meta)
    save_csv(curves, out / "curves.csv")
    png = plot_curves(curves, out / "curves.png", title=f"{task.name}: mean ± std over {len(seeds)} seeds")
    print(format_table(curves, equations))
    print(f"wrote {out / 'results.json'}, {out / 'curves.csv'}, {png}")
    print(json.dumps({"out": str(out), "summary": [c.summary() for c in curves]}, default=str))
    return 0
