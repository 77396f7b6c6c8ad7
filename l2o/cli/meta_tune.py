"""``l2o meta-tune`` (stage 3: a rule's constants meta-learned) and ``l2o export`` (a rule → a .py file)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from l2o.cli.options import add_common, add_config_flags, add_task, config_from_args, task_spec
from l2o.pipeline.config import MetaTuneConfig


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta-tune", help="meta-learn the constants of a symbolic rule (stage 3)",
                       description="The rule's float constants become learnable inside the same unrolled "
                                   "meta-training loop as the LSTMs; the best constants on the evaluation split are "
                                   "kept. Give --equation, or --psi for the form -sum W*g*tanh(x/g) over features "
                                   "and lags.")
    _equation_args(p)
    p.add_argument("--psi", default=None, metavar="FEATURES",
                   help="build psi over these comma-separated features instead of --equation, e.g. mt,gt")
    p.add_argument("--lags", default="0,1", help="lags of --psi, comma-separated (default: 0,1)")
    p.add_argument("--psi-weight", type=float, default=1e-3, help="initial W of every psi term (default: 1e-3)")
    p.add_argument("--psi-gamma", type=float, default=1.0, help="initial gamma of every psi term (default: 1)")
    add_task(p)
    add_config_flags(p, MetaTuneConfig, skip=("enabled",), defaults=MetaTuneConfig(decay=None))
    p.add_argument("--out", default=None, help="output folder (default: <storage>/meta_tune/<task>-<UTC time>)")
    add_common(p)
    p.set_defaults(func=run)
    e = sub.add_parser("export", help="write a rule as a standalone torch optimizer (.py)",
                       description="The file defines one torch.optim.Optimizer subclass, needs only torch, and "
                                   "carries the rule in LaTeX in its docstring.")
    _equation_args(e)
    e.add_argument("--name", default="SymbolicRule", help="class name (default: SymbolicRule)")
    e.add_argument("--out", required=True, help="the .py file to write")
    add_common(e)
    e.set_defaults(func=run_export)


def _equation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--equation", default=None,
                   help="the rule: text such as '-0.01*tanh(mt_0)', an Equation JSON file, or a run's "
                        "select/equations.json or meta_tune/equation.json (its update_rule)")
    p.add_argument("--beta", type=float, default=0.95, help="moment decay of the features (default: 0.95)")
    p.add_argument("--eps", type=float, default=1e-8, help="denominator guard of the features (default: 1e-8)")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from l2o.expr import Equation
    from l2o.optim.export import export_optimizer
    from l2o.optim.tune import load_equation, meta_tune, psi_rule, with_decay
    from l2o.pipeline.placement import meta_config
    from l2o.storage import storage_root

    if (args.equation is None) == (args.psi is None):
        raise ValueError("give exactly one of --equation and --psi")
    cfg = config_from_args(MetaTuneConfig, args, skip=("enabled",), base={"decay": None})
    if args.psi:
        source = Equation(psi_rule([f.strip() for f in args.psi.split(",") if f.strip()],
                                   [int(x) for x in args.lags.split(",") if x.strip()], args.psi_weight, args.psi_gamma),
                          meta={"form": "psi"})
    else:
        source = load_equation(args.equation)
    if cfg.decay is not None:
        source = with_decay(source, cfg.decay)
    task = task_spec(args).build(args.device, getattr(torch, args.dtype))
    bar = tqdm(total=cfg.epochs, desc="meta-tune", unit="epoch", disable=args.no_progress)

    def on_epoch(record):
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("meta_loss", "eval_loss")
                         and isinstance(v, float)})

    tuned, state = meta_tune(source, task, meta_config(cfg), args.beta, args.eps, on_epoch)
    bar.close()
    out = Path(args.out) if args.out else (
        storage_root(args.storage) / "meta_tune" / f"{task.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "equation.json").write_text(json.dumps({**tuned.to_dict(), "update_rule": tuned.to_dict(),
                                                   "history": state.history}, indent=1, default=str))
    (out / "optimizer.py").write_text(export_optimizer(tuned, name="MetaTunedRule", beta=args.beta, eps=args.eps))
    print(f"tuned: {tuned.text}")
    print(f"wrote {out / 'equation.json'} and {out / 'optimizer.py'}")
    print(json.dumps({"out": str(out), "equation": tuned.text, "eval_loss_before": tuned.meta["eval_loss_before"],
                      "eval_loss_after": tuned.meta["eval_loss_after"], "epochs": state.epoch}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from l2o.optim.export import export_optimizer
    from l2o.optim.tune import load_equation

    if not args.equation:
        raise ValueError("--equation is required")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_optimizer(load_equation(args.equation), name=args.name, beta=args.beta, eps=args.eps))
    print(json.dumps({"out": str(out)}))
    return 0
