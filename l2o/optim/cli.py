"""``l2o meta-tune`` (stage 3: an equation's constants meta-learned) and ``l2o export`` (equation → .py)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _equation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--equation", default=None,
                   help="the rule: text such as '-0.01*tanh(mt_0)', an Equation JSON file, or a distillation's "
                        "equations.json (its update_rule)")
    p.add_argument("--beta", type=float, default=0.95, help="moment decay of the features (default: 0.95)")
    p.add_argument("--eps", type=float, default=1e-8, help="denominator guard of the features (default: 1e-8)")


def add_meta_tune(sub: argparse._SubParsersAction, common, task_args) -> None:
    from l2o.meta.cli import add_meta_config_args

    p = sub.add_parser("meta-tune", help="meta-learn the constants of a symbolic rule (stage 3)",
                       description="The rule's float constants become learnable inside the same unrolled "
                                   "meta-training loop as the LSTMs; the best constants on meta_valid are kept. "
                                   "Give --equation, or --psi for the form -sum W*g*tanh(x/g) over features and lags.")
    _equation_args(p)
    p.add_argument("--psi", default=None, metavar="FEATURES",
                   help="build psi over these comma-separated features instead of --equation, e.g. mt,gt")
    p.add_argument("--lags", default="0,1", help="lags of --psi, comma-separated (default: 0,1)")
    p.add_argument("--psi-weight", type=float, default=1e-3, help="initial W of every psi term (default: 1e-3)")
    p.add_argument("--psi-gamma", type=float, default=1.0, help="initial gamma of every psi term (default: 1)")
    p.add_argument("--decay", type=float, default=None, metavar="K0",
                   help="multiply the rule by exp(-k*step_0) (step_0 = t/1000), k learned from K0: a step-size "
                        "schedule, which an LSTM keeps in its hidden state and a rule over mt, gt cannot "
                        "(default: none)")
    task_args(p)
    add_meta_config_args(p, epochs=50, meta_lr=3e-3, eval_every=2)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget (default: none)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <storage>/meta_tune/<task>-<UTC time>)")
    common(p)
    p.set_defaults(func=run_meta_tune)


def run_meta_tune(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from l2o.cli import build_task
    from l2o.distill import Equation
    from l2o.meta.cli import meta_config_from_args
    from l2o.optim.export import export_optimizer
    from l2o.optim.symbolic import load_equation, meta_tune, psi_rule
    from l2o.storage import storage_root

    if (args.equation is None) == (args.psi is None):
        raise ValueError("give exactly one of --equation and --psi")
    if args.psi:
        source = Equation(psi_rule([f.strip() for f in args.psi.split(",") if f.strip()],
                                   [int(x) for x in args.lags.split(",") if x.strip()], args.psi_weight, args.psi_gamma),
                          meta={"form": "psi"})
    else:
        source = load_equation(args.equation)
    if args.decay is not None:
        source = with_decay(source, args.decay)
    task = build_task(args)
    cfg = meta_config_from_args(args, epochs=50)
    bar = tqdm(total=cfg.epochs, desc="meta-tune", unit="epoch", disable=args.no_progress)

    def on_epoch(record):
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("meta_loss", "eval_loss")
                         and isinstance(v, float)})

    tuned, state = meta_tune(source, task, cfg, args.beta, args.eps, on_epoch,
                             max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    bar.close()
    before, after = tuned.meta["eval_loss_before"], tuned.meta["eval_loss_after"]
    out = Path(args.out) if args.out else (
        storage_root(args.storage) / "meta_tune" / f"{args.task}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "equation.json").write_text(json.dumps({**tuned.to_dict(), "update_rule": tuned.to_dict(),
                                                   "history": state.history}, indent=1, default=str))
    (out / "optimizer.py").write_text(export_optimizer(tuned, name="MetaTunedRule", beta=args.beta, eps=args.eps))
    print(f"tuned: {tuned.text}")
    print(f"wrote {out / 'equation.json'} and {out / 'optimizer.py'}")
    print(json.dumps({"out": str(out), "equation": tuned.text, "eval_loss_before": before, "eval_loss_after": after,
                      "epochs": state.epoch}))
    return 0


def with_decay(equation, k0: float):
    """``equation`` times exp(−k·step_0), k starting at ``k0`` (a float constant, so meta-tuning learns it)."""
    import sympy as sp

    from l2o.distill import Equation

    if not 0 < k0 < 1e3:
        raise ValueError(f"--decay must be in (0, 1000), got {k0}")
    expr = equation.expr * sp.exp(-sp.Float(k0) * sp.Symbol("step_0"))
    return Equation(expr, meta={**equation.meta, "decay_init": k0, "undecayed": equation.text})


def add_export(sub: argparse._SubParsersAction, common) -> None:
    p = sub.add_parser("export", help="write a rule as a standalone torch optimizer (.py)",
                       description="The file defines one torch.optim.Optimizer subclass, needs only torch, and "
                                   "carries the rule in LaTeX in its docstring.")
    _equation_args(p)
    p.add_argument("--name", default="SymbolicRule", help="class name (default: SymbolicRule)")
    p.add_argument("--out", required=True, help="the .py file to write")
    common(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from l2o.optim.export import export_optimizer
    from l2o.optim.symbolic import load_equation

    if not args.equation:
        raise ValueError("--equation is required")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_optimizer(load_equation(args.equation), name=args.name, beta=args.beta, eps=args.eps))
    print(json.dumps({"out": str(out)}))
    return 0


def add_train_large(sub: argparse._SubParsersAction, common) -> None:
    from l2o.eval.large import LARGE_DATASETS, LARGE_MODELS, LargeRunConfig

    d = LargeRunConfig()
    p = sub.add_parser("train-large", help="train a CIFAR ResNet/MobileNet with each optimizer, by epochs",
                       description="The large-model comparison: the same model, data order and schedule for every "
                                   "--optimizer; test accuracy per epoch. Offline, --dataset synthetic is a "
                                   "labelled stand-in, not CIFAR.")
    p.add_argument("--model", default=d.model, choices=LARGE_MODELS, help=f"network (default: {d.model})")
    p.add_argument("--dataset", default=d.dataset, choices=LARGE_DATASETS, help=f"data (default: {d.dataset})")
    p.add_argument("--optimizer", action="append", default=None, metavar="SPEC",
                   help="optimizer spec as in l2o eval, e.g. symbolic:equation=rule.json, "
                        "sgdm:lr=0.1,momentum=0.9,weight_decay=5e-4, adam:lr=1e-3 (repeatable; default: those three "
                        "with the RP-style rule of benchmarks/optimizer_step.py)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default: {d.batch_size})")
    p.add_argument("--schedule", default=d.schedule, choices=("cosine", "none"),
                   help="lr schedule of every optimizer (default: cosine)")
    p.add_argument("--no-augment", action="store_true", help="no random crop/flip on real CIFAR")
    p.add_argument("--limit-train", type=int, default=0, help="use only this many training images (0: all)")
    p.add_argument("--limit-test", type=int, default=0, help="use only this many test images (0: all)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--seed", type=int, default=0, help="model init and data order (default: 0)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $L2O_DATA, else ~/.l2o/data)")
    p.add_argument("--out", default=None, help="output folder (default: <storage>/large/<model>-<UTC time>)")
    common(p)
    p.set_defaults(func=run_train_large)


DEFAULT_LARGE_RULE = "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"


def run_train_large(args: argparse.Namespace) -> int:
    from l2o.eval import OptimizerSpec
    from l2o.eval.large import LargeRunConfig, load_data, plot_accuracy, train
    from l2o.storage import storage_root

    config = LargeRunConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                            schedule=args.schedule, augment=not args.no_augment, limit_train=args.limit_train,
                            limit_test=args.limit_test, amp=args.amp, seed=args.seed)
    out = Path(args.out) if args.out else (
        storage_root(args.storage) / "large" / f"{args.model}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    specs = args.optimizer or []
    if not specs:
        (out / "rule.json").write_text(json.dumps({"equation": DEFAULT_LARGE_RULE}))
        specs = [f"symbolic:equation={out / 'rule.json'}", "sgdm:lr=0.1,momentum=0.9,weight_decay=5e-4",
                 "adam:lr=1e-3"]
    specs = [OptimizerSpec.parse(s) for s in specs]
    data = load_data(args.dataset, args.data_root)
    print(f"data: {data['source']}")
    show = None if args.no_progress else (lambda label, h: print(
        f"{label[:50]:50s} epoch {h['epoch']:3d}  train {h['train_loss']:.4f}  test {h['test_loss']:.4f}  "
        f"acc {h['test_accuracy']:.4f}  {h['seconds']:.0f}s", flush=True))
    runs = [train(spec, config, data, args.device, show) for spec in specs]
    (out / "results.json").write_text(json.dumps({"runs": runs}, indent=1))
    png = plot_accuracy(runs, out / "accuracy.png", f"{args.model} on {data['source'][:60]}")
    for r in runs:
        last = r["history"][-1]
        print(f"{r['optimizer'][:60]:60s} test acc {last['test_accuracy']:.4f}  {last['seconds']:.0f}s")
    print(json.dumps({"out": str(out), "plot": str(png), "synthetic_data": data["synthetic"],
                      "final_accuracy": {r["optimizer"]: r["history"][-1]["test_accuracy"] for r in runs}}))
    return 0

