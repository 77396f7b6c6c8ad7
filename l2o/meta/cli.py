"""``l2o meta-train``: meta-train a DM / RP / RP_si LSTM optimizer, with checkpoints and resume.

The ``MetaTrainConfig`` options are defined once here and shared with ``l2o meta-tune``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def add_meta_config_args(p: argparse.ArgumentParser, **defaults) -> None:
    """The ``MetaTrainConfig`` options, shared by ``meta-train`` and ``meta-tune`` (``defaults`` override)."""
    from l2o.meta import MetaTrainConfig

    d = dataclasses.replace(MetaTrainConfig(), **defaults)
    p.add_argument("--epochs", type=int, default=None,
                   help=f"optimizees sampled in all; with --resume, extends the run (default: {d.epochs})")
    p.add_argument("--epoch-len", type=int, default=d.epoch_len,
                   help=f"steps per optimizee without a curriculum (default: {d.epoch_len})")
    p.add_argument("--unroll", type=int, default=d.unroll, help=f"steps per BPTT window (default: {d.unroll})")
    p.add_argument("--meta-lr", type=float, default=d.meta_lr, help=f"Adam lr of the L2O (default: {d.meta_lr})")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip,
                   help=f"max meta-gradient norm, 0 = off (default: {d.grad_clip})")
    p.add_argument("--scale-range", type=float, default=d.scale_range,
                   help="random parameter scaling c = exp(U(-r, r)); 0 = off (default: 0)")
    p.add_argument("--curriculum", default="",
                   help="horizons, comma-separated, e.g. 100,200,500,1000 (default: none, use --epoch-len)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"evaluations without improvement before advancing or stopping (default: {d.patience})")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help=f"epochs between evaluations (default: {d.eval_every})")
    p.add_argument("--eval-seeds", type=int, default=d.eval_seeds,
                   help=f"optimizees per evaluation (default: {d.eval_seeds})")
    p.add_argument("--eval-split", default=d.eval_split, choices=("meta_train", "meta_valid"),
                   help=f"split of the evaluations that keep the best weights (default: {d.eval_split})")
    p.add_argument("--imitation-prob", type=float, default=d.imitation_prob,
                   help="probability that a window imitates an Adam teacher (default: 0)")
    p.add_argument("--teacher-lr", type=float, default=d.teacher_lr,
                   help=f"the Adam teacher's lr (default: {d.teacher_lr})")
    p.add_argument("--max-bad-windows", type=int, default=d.max_bad_windows,
                   help=f"NaN/inf windows tolerated before stopping (default: {d.max_bad_windows})")
    p.add_argument("--seed", type=int, default=d.seed, help="root of every random draw (default: 0)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the L2O step and the optimizee gradient (pays off on GPUs)")


def meta_config_from_args(args: argparse.Namespace, **defaults):
    from l2o.meta import MetaTrainConfig

    return MetaTrainConfig(
        epochs=args.epochs or dataclasses.replace(MetaTrainConfig(), **defaults).epochs, epoch_len=args.epoch_len,
        unroll=args.unroll, meta_lr=args.meta_lr, grad_clip=args.grad_clip, scale_range=args.scale_range,
        curriculum=tuple(int(x) for x in args.curriculum.split(",") if x.strip()), patience=args.patience,
        eval_every=args.eval_every, eval_seeds=args.eval_seeds, eval_split=args.eval_split,
        imitation_prob=args.imitation_prob,
        teacher_lr=args.teacher_lr, max_bad_windows=args.max_bad_windows, seed=args.seed, compile=args.compile)


def add_meta_train(sub: argparse._SubParsersAction, common, task_args) -> None:
    from l2o.learned import MODELS

    p = sub.add_parser("meta-train", help="meta-train an LSTM optimizer (DM, RP, RP_si)",
                       description="Truncated-BPTT meta-training on fresh optimizees of the meta_train split; "
                                   "evaluation on meta_valid keeps the best weights. Writes one checkpoint file.")
    p.add_argument("--model", default="rp", choices=MODELS, help="learned optimizer (default: rp)")
    p.add_argument("--hidden", default=None, help="LSTM widths, comma-separated (default: 20,20)")
    p.add_argument("--features", default=None,
                   help="input features, comma-separated, from l2o.learned.FEATURES (default: the model's)")
    p.add_argument("--learned-scale", action="store_true", help="learn the pre-tanh output scale (RP, RP_si)")
    task_args(p)
    add_meta_config_args(p)
    p.add_argument("--out", default=None,
                   help="checkpoint file (default: <storage>/meta_train/<model>-<task>-<UTC time>/checkpoint.pt)")
    p.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    p.add_argument("--init-from", default=None,
                   help="start from this checkpoint's best weights (fine-tune, e.g. on another task)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget; the run stops after the epoch that crosses it (default: none)")
    p.add_argument("--checkpoint-every", type=int, default=5, help="epochs between checkpoint writes (default: 5)")
    common(p)
    p.set_defaults(func=run_meta_train)


def run_meta_train(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from l2o.cli import build_task
    from l2o.learned import CoordinateLSTM, lstm_config
    from l2o.learned.checkpoint import (configs_from_checkpoint, l2o_from_checkpoint, load_checkpoint,
                                        restore_trainer, save_checkpoint)
    from l2o.meta import MetaTrainer
    from l2o.storage import storage_root

    task = build_task(args)
    task_spec = {"name": args.task, "options": list(args.task_opt)}
    if args.resume:
        doc = load_checkpoint(args.resume)
        l2o_cfg, meta_cfg = configs_from_checkpoint(doc)
        if args.epochs is not None:
            meta_cfg = dataclasses.replace(meta_cfg, epochs=args.epochs)
        out = Path(args.out or args.resume)
    else:
        overrides = {}
        if args.hidden:
            overrides["hidden"] = tuple(int(x) for x in args.hidden.split(","))
        if args.features:
            overrides["features"] = tuple(x.strip() for x in args.features.split(","))
        if args.learned_scale:
            overrides["learned_scale"] = True
        l2o_cfg = lstm_config(args.model, **overrides)
        meta_cfg = meta_config_from_args(args)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = Path(args.out) if args.out else (
            storage_root(args.storage) / "meta_train" / f"{args.model}-{args.task}-{stamp}" / "checkpoint.pt")
    torch.manual_seed(meta_cfg.seed)  # the L2O's initial weights: --seed is the root of every draw
    l2o = l2o_from_checkpoint(args.init_from) if args.init_from else CoordinateLSTM(l2o_cfg)
    trainer = MetaTrainer(l2o.to(device=task.device, dtype=task.dtype), task, meta_cfg)
    if args.resume:
        restore_trainer(trainer, doc)
    bar = tqdm(total=meta_cfg.epochs, initial=trainer.state.epoch, desc=f"meta-train {l2o_cfg.model}",
               unit="epoch", disable=args.no_progress)

    def on_epoch(record):
        bar.update(1)
        bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in record.items()
                         if k in ("horizon", "meta_loss", "eval_loss")})
        if trainer.state.epoch % args.checkpoint_every == 0:
            save_checkpoint(out, trainer, task_spec)

    trainer.fit(on_epoch, max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    bar.close()
    save_checkpoint(out, trainer, task_spec)
    print(f"wrote {out}")
    print(json.dumps({"checkpoint": str(out), "epochs": trainer.state.epoch, "best_eval": trainer.state.best_eval,
                      "bad_windows": trainer.state.bad_windows}))
    return 0
