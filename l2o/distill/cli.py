"""``l2o sanity``: the paper's sanity table — symbolic regression recovering known update rules."""

from __future__ import annotations

import argparse


def add_sanity(sub: argparse._SubParsersAction, common) -> None:
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
    common(p)
    p.set_defaults(func=run_sanity_cli)


def run_sanity_cli(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from l2o.distill.sanity import format_rows, run_sanity, summary_json

    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    bar = tqdm(total=len(names), desc="sanity", unit="case", disable=args.no_progress)
    rows = run_sanity(names, engine=args.engine, rows=args.rows, seed=args.seed, progress=lambda r: bar.update(1))
    bar.close()
    print(format_rows(rows))
    print(summary_json(rows))
    return 0


def add_distill(sub: argparse._SubParsersAction, common, task_args) -> None:
    from l2o.distill.engines import DEFAULT_OPERATORS, ENGINES, OPERATORS
    from l2o.distill.record import RecordConfig

    p = sub.add_parser("distill", help="distil a meta-trained LSTM optimizer into an equation",
                       description="Roll the checkpoint's optimizer out on the held-out split, record windows of its "
                                   "features and outputs, search equations, fit their constants, and write the "
                                   "dataset, equations, report and a response plot under the storage root.")
    p.add_argument("checkpoint", help="a checkpoint written by l2o meta-train")
    task_args(p)
    d = RecordConfig()
    p.add_argument("--steps", type=int, default=d.steps, help=f"rollout steps per seed (default: {d.steps})")
    p.add_argument("--seeds", type=int, default=len(d.seeds),
                   help=f"rollouts searched on, seeds 0..K-1 (default: {len(d.seeds)})")
    p.add_argument("--test-seeds", type=int, default=8,
                   help="further rollouts, seeds K..K+T-1, recorded only to score the chosen equation on "
                        "runs the search never saw (R² on new rollouts); 0 skips them (default: 8)")
    p.add_argument("--coords", type=int, default=d.coords_per_tensor,
                   help=f"coordinates tracked per tensor (default: {d.coords_per_tensor})")
    p.add_argument("--windows", type=int, default=d.windows_per_coord,
                   help=f"windows per tracked coordinate (default: {d.windows_per_coord})")
    p.add_argument("--features", default=None,
                   help="input features, comma-separated (default: what the model reads, e.g. mt,gt for RP)")
    p.add_argument("--max-lag", type=int, default=2, help="lags 0..max-lag of each feature (default: 2)")
    p.add_argument("--target", default="raw", choices=("raw", "update"),
                   help="the network output before squashing, or the step taken (default: raw)")
    p.add_argument("--engine", default="operon", choices=ENGINES, help="SR engine (default: operon)")
    p.add_argument("--operators", default=",".join(DEFAULT_OPERATORS),
                   help=f"comma-separated, from {','.join(OPERATORS)} (default: {','.join(DEFAULT_OPERATORS)})")
    p.add_argument("--max-complexity", type=int, default=30, help="largest equation, in nodes (default: 30)")
    p.add_argument("--population", type=int, default=1000, help="SR population (default: 1000)")
    p.add_argument("--generations", type=int, default=300, help="SR generations (default: 300)")
    p.add_argument("--time-limit", type=float, default=120, help="SR seconds at most (default: 120)")
    p.add_argument("--selection", default="score", choices=("score", "accuracy"),
                   help="equation chosen from the front, on rows kept from the search: the largest drop in "
                        "log-loss per node (PySR's score), or the simplest reaching --r2-threshold (default: score)")
    p.add_argument("--r2-threshold", type=float, default=0.99,
                   help="R² that --selection accuracy asks for; failing that, the front's best (default: 0.99)")
    p.add_argument("--search-seed", type=int, default=0,
                   help="seed of the search and of which rows it keeps back for R² (default: 0)")
    p.add_argument("--out", default=None, help="output folder (default: <storage>/distill/<checkpoint folder name>)")
    common(p)
    p.set_defaults(func=run_distill_cli)


def run_distill_cli(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from l2o.cli import build_task
    from l2o.distill.pipeline import distill
    from l2o.distill.record import RecordConfig
    from l2o.learned import l2o_from_checkpoint
    from l2o.storage import storage_root

    if args.test_seeds < 0:
        raise ValueError(f"--test-seeds must be 0 or more, got {args.test_seeds}")
    l2o = l2o_from_checkpoint(args.checkpoint)
    task = build_task(args)
    out = Path(args.out) if args.out else storage_root(args.storage) / "distill" / Path(args.checkpoint).resolve().parent.name
    cfg = RecordConfig(steps=args.steps, seeds=tuple(range(args.seeds)), coords_per_tensor=args.coords,
                       windows_per_coord=args.windows)
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    settings = dict(operators=tuple(o.strip() for o in args.operators.split(",")), max_complexity=args.max_complexity,
                    population=args.population, generations=args.generations, time_limit=args.time_limit,
                    selection=args.selection, r2_threshold=args.r2_threshold, seed=args.search_seed,
                    threads=torch.get_num_threads())  # --threads, else one per core
    summary = distill(l2o, task, out, cfg, features=features, max_lag=args.max_lag, target=args.target,
                      engine=args.engine, engine_settings=settings, source=str(args.checkpoint),
                      test_seeds=range(args.seeds, args.seeds + args.test_seeds))
    print(f"equation   {summary['equation']}")
    print(f"LaTeX      {summary['latex']}")
    print(f"R² search {summary['r2_search']:.4f}, after constant fitting {summary['r2_fitted']:.4f} "
          f"({summary['rows']} rows, {summary['seconds']:.1f} s)")
    if summary["r2_new_rollouts"] is not None:
        print(f"R² on {len(summary['test_seeds'])} new rollouts (seeds {summary['test_seeds'][0]}–"
              f"{summary['test_seeds'][-1]}) {summary['r2_new_rollouts']:.4f}")
    print(json.dumps(summary, default=str))
    return 0
