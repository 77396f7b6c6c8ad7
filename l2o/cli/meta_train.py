"""``l2o meta-train``: meta-train a DM / RP / RP_si LSTM optimizer into one checkpoint file, with resume."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from l2o.cli.options import add_common, add_config_flags, add_task, config_from_args, task_spec
from l2o.learned.lstm import LSTMConfig
from l2o.meta.trainer import MetaTrainConfig


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta-train", help="meta-train an LSTM optimizer (DM, RP, RP_si)",
                       description="Truncated-BPTT meta-training on fresh optimizees of the meta_train split; "
                                   "evaluation on meta_valid keeps the best weights. Writes one checkpoint file.")
    add_config_flags(p, LSTMConfig)
    add_task(p)
    add_config_flags(p, MetaTrainConfig)
    p.add_argument("--out", default=None,
                   help="checkpoint file (default: <storage>/meta_train/<model>-<task>-<UTC time>/checkpoint.pt)")
    p.add_argument("--resume", default=None, help="continue the run saved in this checkpoint (--epochs extends it)")
    p.add_argument("--init-from", default=None,
                   help="start from this checkpoint's best weights (fine-tune, e.g. on another task)")
    p.add_argument("--checkpoint-every", type=int, default=5, help="epochs between checkpoint writes (default: 5)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from l2o.config import from_dict, to_dict
    from l2o.learned import CoordinateLSTM, l2o_from_checkpoint
    from l2o.meta import MetaTrainer
    from l2o.meta.checkpoint import load_checkpoint, restore_trainer, save_checkpoint
    from l2o.storage import storage_root

    if args.resume:
        doc = load_checkpoint(args.resume)
        l2o_cfg = from_dict(LSTMConfig, doc["l2o_config"])
        meta_cfg = config_from_args(MetaTrainConfig, args, base=doc["meta_config"])
        spec = task_spec(args, doc["task"])
        out = Path(args.out or args.resume)
    else:
        l2o_cfg = config_from_args(LSTMConfig, args).resolved()
        meta_cfg = config_from_args(MetaTrainConfig, args)
        spec = task_spec(args)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = Path(args.out) if args.out else (
            storage_root(args.storage) / "meta_train" / f"{l2o_cfg.model}-{spec.name}-{stamp}" / "checkpoint.pt")
    task = spec.build(args.device, getattr(torch, args.dtype))
    torch.manual_seed(meta_cfg.seed)  # the L2O's initial weights: --seed is the root of every draw
    l2o = l2o_from_checkpoint(args.init_from) if args.init_from else CoordinateLSTM(l2o_cfg)
    trainer = MetaTrainer(l2o.to(device=task.device, dtype=task.dtype), task, meta_cfg)
    if args.resume:
        restore_trainer(trainer, doc)
    task_doc = to_dict(spec)
    bar = tqdm(total=meta_cfg.epochs, initial=trainer.state.epoch, desc=f"meta-train {l2o.config.model}",
               unit="epoch", disable=args.no_progress)

    def on_epoch(record):
        bar.update(1)
        bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in record.items()
                         if k in ("horizon", "meta_loss", "eval_loss")})
        if trainer.state.epoch % args.checkpoint_every == 0:
            save_checkpoint(out, trainer, task_doc)

    trainer.fit(on_epoch)
    bar.close()
    save_checkpoint(out, trainer, task_doc)
    print(f"wrote {out}")
    print(json.dumps({"checkpoint": str(out), "epochs": trainer.state.epoch, "best_eval": trainer.state.best_eval,
                      "bad_windows": trainer.state.bad_windows}))
    return 0
