"""One self-describing checkpoint file per run: configs, weights, meta-optimizer state, progress, RNG.

Layout (a dict saved with ``torch.save``, loaded with ``weights_only=True``):
``format``, ``l2o_config`` (the LSTMConfig fields), ``meta_config`` (MetaTrainConfig fields), ``task``
(name and options), ``weights`` (current), ``best_weights``, ``meta_optimizer``, ``train_state``
(epoch, level, best_eval, wait, bad_windows, done, history) and ``rng`` (torch's CPU generator).
Files are written to a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from l2o.learned.lstm import CoordinateLSTM, LSTMConfig, lstm_config
from l2o.meta.trainer import MetaTrainConfig, MetaTrainer, TrainState

FORMAT = "l2o-lstm-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, trainer: MetaTrainer, task_spec: dict[str, Any],
                    meta_config: MetaTrainConfig | None = None) -> Path:
    """Write ``trainer``'s run; ``meta_config`` replaces its config in the file (a data-parallel worker
    trains with its own seed but records the run's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "l2o_config": dataclasses.asdict(trainer.l2o.config),
        "meta_config": dataclasses.asdict(meta_config or trainer.config),
        "task": dict(task_spec),
        "weights": trainer.l2o.state_dict(),
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
        raise ValueError(f"{path} is not an l2o LSTM checkpoint (format {FORMAT})")
    return doc


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def l2o_from_checkpoint(doc_or_path: dict[str, Any] | str | os.PathLike, best: bool = True) -> CoordinateLSTM:
    """The learned optimizer of a checkpoint, with its best (default) or latest weights."""
    doc = doc_or_path if isinstance(doc_or_path, dict) else load_checkpoint(doc_or_path)
    l2o = CoordinateLSTM(configs_from_checkpoint(doc)[0])
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


def configs_from_checkpoint(doc: dict[str, Any]) -> tuple[LSTMConfig, MetaTrainConfig]:
    cfg = _tuples(doc["l2o_config"])
    return lstm_config(cfg.pop("model"), **cfg), MetaTrainConfig(**_tuples(doc["meta_config"]))
