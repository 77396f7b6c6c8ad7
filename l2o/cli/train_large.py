"""``l2o train-large``: CIFAR ResNet-18/50 or MobileNetV2 with each optimizer, by epochs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from l2o.cli.options import add_common


def add(sub: argparse._SubParsersAction) -> None:
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
    add_common(p)
    p.set_defaults(func=run)


DEFAULT_LARGE_RULE = "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"


def run(args: argparse.Namespace) -> int:
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

