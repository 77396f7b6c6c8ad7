"""One self-describing checkpoint file per run: configs, weights, meta-optimizer state, progress, RNG.

Layout (a dict saved with ``torch.save``, loaded with ``weights_only=True``):
``format``, ``l2o_kind`` (the ``LearnedOptimizer`` kind, e.g. "lstm"), ``l2o_config`` (its config
fields), ``meta_config`` (MetaTrainConfig fields), ``task`` (name and options), ``weights`` (current),
``best_weights``, ``meta_optimizer``, ``train_state`` (epoch, level, best_eval, wait, bad_windows, done,
history) and ``rng`` (torch's CPU generator). Files are written to a temporary name and renamed, so a
crash never leaves half a checkpoint. This module knows learned optimizers only through their interface:
the kind's class must be imported (``l2o.learned`` registers the LSTMs) to rebuild one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from l2o.config import from_dict, to_dict
from l2o.meta.interface import LearnedOptimizer
from l2o.meta.trainer import MetaTrainConfig, MetaTrainer, TrainState

FORMAT = "l2o-lstm-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, trainer: MetaTrainer, task_spec: dict[str, Any],
                    meta_config: MetaTrainConfig | None = None) -> Path:
    """Write ``trainer``'s run; ``meta_config`` replaces its config in the file (a data-parallel worker
    trains with its own seed but records the run's). ``task_spec``: ``{"name", "options"}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    l2o = trainer.l2o
    doc = {
        "format": FORMAT,
        "l2o_kind": l2o.kind,
        "l2o_config": to_dict(l2o.config) if dataclasses.is_dataclass(l2o.config) else dict(l2o.config),
        "meta_config": to_dict(meta_config or trainer.config),
        "task": {"name": task_spec["name"], "options": dict(task_spec.get("options") or {})},
        "weights": l2o.state_dict(),
        "best_weights": trainer.best_weights,
        "meta_optimizer": trainer.meta_opt.state_dict(),
        "train_state": dataclasses.asdict(trainer.state),
        "rng": torch.get_rng_state(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    doc = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not an l2o checkpoint (format {FORMAT})")
    options = doc["task"].get("options") or {}
    if isinstance(options, list):  # written as "key=value" texts before task options were typed
        options = dict(item.split("=", 1) for item in options)
    doc["task"] = {"name": doc["task"]["name"], "options": options}
    return doc


def l2o_from_checkpoint(doc_or_path: dict[str, Any] | str | os.PathLike, best: bool = True) -> LearnedOptimizer:
    """The learned optimizer of a checkpoint, with its best (default) or latest weights."""
    doc = doc_or_path if isinstance(doc_or_path, dict) else load_checkpoint(doc_or_path)
    kind = doc.get("l2o_kind", "lstm")
    if kind not in LearnedOptimizer.kinds:
        raise ValueError(f"the checkpoint holds a learned optimizer of kind {kind!r}, which no imported package "
                         f"defines (known: {sorted(LearnedOptimizer.kinds)}; the LSTMs are in l2o.learned)")
    l2o = LearnedOptimizer.kinds[kind].from_config(doc["l2o_config"])
    l2o.load_state_dict(doc["best_weights"] if best else doc["weights"])
    return l2o


def restore_trainer(trainer: MetaTrainer, doc: dict[str, Any]) -> MetaTrainer:
    """Put a checkpoint's weights, optimizer state, progress and RNG back into ``trainer`` (resume)."""
    trainer.l2o.load_state_dict(doc["weights"])
    trainer.best_weights = doc["best_weights"]
    trainer.meta_opt.load_state_dict(doc["meta_optimizer"])
    trainer.state = TrainState(**doc["train_state"])
    torch.set_rng_state(doc["rng"])
    return trainer


def meta_config_of(doc: dict[str, Any]) -> MetaTrainConfig:
    return from_dict(MetaTrainConfig, doc["meta_config"])
