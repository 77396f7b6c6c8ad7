"""Distillation data: roll a trained learned optimizer out and record what it sees and what it does.

For each seed, a fresh optimizee of the ``eval`` split (held out from meta-training) is trained by the
L2O for ``steps`` steps. ``coords_per_tensor`` random coordinates of every parameter tensor are
tracked: at every step, every feature of ``l2o.learned.FEATURES`` and the L2O's raw output and update.
Then ``windows_per_coord`` windows of ``window`` steps are placed at random ends t per coordinate; a row
holds the features at lags 0 (= t) … window−1 as columns ``<feature>_<lag>`` and the targets ``raw``
(the network's output before squashing) and ``update`` (the step it took). Windows whose current
gradient is exactly zero (a dead unit) are skipped and counted.

``save_dataset`` writes Parquet plus a JSON manifest; ``load_dataset`` reads them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from l2o.learned.features import FEATURES, FeatureExtractor
from l2o.learned.lstm import CPU_CHUNK, CoordinateLSTM, step_in_chunks
from l2o.meta.flat import FlatParams, loss_and_grad
from l2o.tasks import Task

TARGETS = ("raw", "update")


@dataclass(frozen=True)
class RecordConfig:
    steps: int = 1000  # rollout steps per seed
    # Many coordinates with a few windows each fit better than a few with many: each coordinate's
    # history is its own (a DM: R² 0.84 from 8 rollouts × 48 per tensor × 5, 0.48 from 3 × 16 × 20).
    seeds: tuple[int, ...] = tuple(range(8))  # optimizees rolled out (eval split)
    coords_per_tensor: int = 48  # coordinates tracked per parameter tensor
    window: int = 20  # lags per row
    windows_per_coord: int = 5  # random window placements per tracked coordinate
    features: tuple[str, ...] = FEATURES  # features recorded at every lag
    split: str = "eval"  # data split of the rollouts
    seed: int = 0  # coordinate choice and window placement


@dataclass
class Dataset:
    frame: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def xy(self, target: str = "raw", columns: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        cols = list(columns or self.manifest["feature_columns"])
        return self.frame[cols].to_numpy(np.float64), self.frame[target].to_numpy(np.float64), cols


def feature_columns(features: Sequence[str], window: int) -> list[str]:
    return [f"{f}_{lag}" for f in features for lag in range(window)]


@torch.no_grad()
def record(l2o: CoordinateLSTM, task: Task, config: RecordConfig = RecordConfig(),
           source: str | None = None, chunk_size: int | None = CPU_CHUNK) -> Dataset:
    """Rolls out and records ``config.seeds``. The L2O steps through the coordinates in chunks of
    ``chunk_size``, each with its own state (see ``l2o.learned.lstm.CPU_CHUNK``). Every coordinate is
    independent, so the rows do not depend on the chunking as long as ``chunk_size`` is a multiple of 64
    (a chunk ending mid-vector is finished by scalar code, which can differ in the last bit)."""
    if config.window > config.steps:
        raise ValueError("window must not exceed steps")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    extractor = FeatureExtractor(config.features, l2o.config.beta, l2o.config.eps)  # the L2O's own β and ε
    frames, skipped = [], 0
    for seed in config.seeds:
        rng = np.random.default_rng([config.seed, seed])  # per rollout: any sharding of seeds gives the same rows
        params = task.init(seed)
        layout = FlatParams(params)
        offsets = np.cumsum([0, *layout.sizes])
        chosen = np.concatenate([o + rng.choice(n, size=min(config.coords_per_tensor, n), replace=False)
                                 for o, n in zip(offsets[:-1], layout.sizes)])
        idx = torch.from_numpy(chosen)
        theta = layout.flatten(params)
        size = chunk_size or theta.numel()
        states = [l2o.init_state(c) for c in theta.split(size)]
        fstate = extractor.init(theta[idx])  # features are per coordinate: kept for the recorded ones only
        batches = task.batches(config.split, seed)
        feats = np.empty((config.steps, len(config.features), len(chosen)))
        raw_hist, upd_hist = np.empty((config.steps, len(chosen))), np.empty((config.steps, len(chosen)))
        for t in range(config.steps):
            loss, grad = loss_and_grad(task, layout, theta, next(batches))
            if not math.isfinite(float(loss)):
                raise RuntimeError(f"seed {seed}: the learned optimizer diverged at step {t}")
            f, fstate = extractor.update(grad[idx], fstate)
            raw = step_in_chunks(l2o.raw_step, grad, states, size)
            update = l2o.squash(raw)
            feats[t] = f.double().numpy()
            raw_hist[t], upd_hist[t] = raw[idx].double().numpy(), update[idx].double().numpy()
            theta = theta + update
        g_row = config.features.index("g") if "g" in config.features else None
        rows = []
        for j in range(len(chosen)):
            ends = rng.integers(config.window - 1, config.steps, size=config.windows_per_coord)
            for end in ends:
                if g_row is not None and feats[end, g_row, j] == 0.0:
                    skipped += 1
                    continue
                lags = feats[end - np.arange(config.window), :, j]  # (window, features), lag 0 first
                rows.append(np.concatenate([lags.T.reshape(-1), [raw_hist[end, j], upd_hist[end, j], seed,
                                                                 chosen[j], end]]))
        cols = feature_columns(config.features, config.window) + ["raw", "update", "seed", "coordinate", "step"]
        frames.append(pd.DataFrame(np.array(rows).reshape(-1, len(cols)), columns=cols))
    frame = pd.concat(frames, ignore_index=True)
    for c in ("seed", "coordinate", "step"):
        frame[c] = frame[c].astype(np.int64)
    manifest = {"source_checkpoint": source, "model": l2o.config.model, "task": task.describe(),
                "config": {**asdict(config), "features": list(config.features), "seeds": list(config.seeds)},
                "feature_names": list(config.features), "feature_columns": feature_columns(config.features,
                                                                                           config.window),
                "targets": list(TARGETS), "rows": len(frame), "skipped_zero_gradient": skipped}
    return Dataset(frame, manifest)


def save_dataset(dataset: Dataset, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dataset.frame.to_parquet(folder / "data.parquet", index=False)
    (folder / "manifest.json").write_text(json.dumps(dataset.manifest, indent=1, default=str))
    return folder


def load_dataset(folder: str | Path) -> Dataset:
    """A dataset folder: ``data.parquet`` or the shards its manifest lists (written in parallel), in order."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = [folder / name for name in manifest.get("shards", ["data.parquet"])]
    return Dataset(pd.concat([pd.read_parquet(f) for f in files], ignore_index=True), manifest)
