"""The ``l2o`` command line: ``l2o <command> --help`` describes every option."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

DTYPES = ("float32", "float64")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device for optimizees and optimizers (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="floating-point type (default: float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (and for the SR search of `distill`) (default: torch's choice, "
                        "usually one per core)")
    p.add_argument("--storage", default=None,
                   help="storage root for outputs (default: $L2O_STORAGE, else ~/.l2o/storage)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _task_args(p: argparse.ArgumentParser) -> None:
    from l2o.tasks import TASK_NAMES

    p.add_argument("--task", default="mnist_mlp", choices=TASK_NAMES, help="optimizee (default: mnist_mlp)")
    p.add_argument("--task-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the task's config, e.g. dataset=mnist, batch_size=64, "
                        "init_std=0.01, hidden=30/20 (repeatable)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $L2O_DATA, else ~/.l2o/data)")
    p.add_argument("--offline", action="store_true", help="never try to download datasets")


def build_task(args: argparse.Namespace):
    import torch

    from l2o.eval.optimizers import parse_value
    from l2o.tasks import make_task

    opts = {}
    for item in args.task_opt:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--task-opt expects KEY=VALUE, got {item!r}")
        opts[key.strip()] = parse_value(value)
    if args.task != "quadratic":
        opts.setdefault("data_root", args.data_root)
        if args.offline:
            opts["download"] = False
    return make_task(args.task, device=args.device, dtype=getattr(torch, args.dtype), **opts)


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare optimizers on a task (mean ± std over seeds)",
                       description="Roll each optimizer on fresh optimizees (seeds 0..K-1) of the held-out "
                                   "'eval' split and save curves (JSON, CSV) and a plot (PNG).")
    _task_args(p)
    p.add_argument("--optimizer", action="append", default=None, metavar="SPEC",
                   help="name[:key=value,...], e.g. adam:lr=1e-3, sgdm:lr=0.05, rmsprop, "
                        "or module.path:Class,lr=0.1 (repeatable; default: adam, sgd, rmsprop)")
    p.add_argument("--tune", action="append", default=[], metavar="SPEC",
                   help="also add this optimizer tuned over the --lr-grid (repeatable), e.g. adam")
    p.add_argument("--lr-grid", default="1e-4,3e-4,1e-3,3e-3,1e-2",
                   help="comma-separated learning rates for --tune (default: 1e-4,3e-4,1e-3,3e-3,1e-2)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default: 300)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds K, runs use 0..K-1 (default: 3)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <storage>/eval/<task>-<UTC time>)")
    _common(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from l2o.eval import OptimizerSpec, format_table, plot_curves, rollout, save_csv, save_json, tune_lr
    from l2o.storage import storage_root

    specs = [OptimizerSpec.parse(s) for s in (args.optimizer or ["adam", "sgd", "rmsprop"])]
    tuned = [OptimizerSpec.parse(s) for s in args.tune]
    lrs = [float(x) for x in args.lr_grid.split(",") if x.strip()]
    task = build_task(args)
    out = Path(args.out) if args.out else (
        storage_root(args.storage) / "eval" / f"{task.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    progress = not args.no_progress
    curves = [rollout(task, spec, args.steps, seeds, progress=progress) for spec in specs]
    for spec in tuned:
        best, _ = tune_lr(task, spec, args.steps, seeds, lrs=lrs, progress=progress)
        curves.append(best)
    meta = {"task": task.describe(), "steps": args.steps, "seeds": seeds, "command": sys.argv}
    save_json(curves, out / "results.json", **meta)
    save_csv(curves, out / "curves.csv")
    png = plot_curves(curves, out / "curves.png", title=f"{task.name}: mean ± std over {len(seeds)} seeds")
    print(format_table(curves))
    print(f"wrote {out / 'results.json'}, {out / 'curves.csv'}, {png}")
    print(json.dumps({"out": str(out), "summary": [c.summary() for c in curves]}, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2o", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_eval(sub)
    from l2o.meta.cli import add_meta_train

    add_meta_train(sub, _common, _task_args)
    from l2o.distill.cli import add_distill, add_sanity

    add_sanity(sub, _common)
    add_distill(sub, _common, _task_args)
    from l2o.optim.cli import add_export, add_meta_tune, add_train_large

    add_meta_tune(sub, _common, _task_args)
    add_export(sub, _common)
    add_train_large(sub, _common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[l2o] %(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as err:  # user-facing errors: one clear line, no traceback
        if args.verbose:
            raise
        print(f"l2o {args.command}: error: {err}", file=sys.stderr)
        return 2
