"""Distillation data: roll a trained learned optimizer out and record what it sees and what it does.

For each seed, a fresh optimizee of the ``eval`` split (held out from meta-training) is trained by the
L2O for ``steps`` steps. ``coords_per_tensor`` random coordinates of every parameter tensor are
tracked: at every step, every built-in feature of ``l2o.features`` and the L2O's raw output and update.
Then ``windows_per_coord`` windows of ``window`` steps are placed at random ends t per coordinate; a row
holds the features at lags 0 (= t) … window−1 as columns ``<feature>_<lag>`` (lag-major, as
``l2o.features.feature_columns`` orders them) and the targets ``raw``
(the network's output before squashing) and ``update`` (the step it took). Windows whose current
gradient is exactly zero (a dead unit) are skipped and counted.

``save_dataset`` writes Parquet plus a JSON manifest; ``load_dataset`` reads them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sympy as sp
import torch

from l2o.config import option, to_dict
from l2o.features import BUILTIN, FeatureExtractor, feature_columns
from l2o.learned.lstm import CPU_CHUNK, step_in_chunks
from l2o.meta.flat import FlatParams, loss_and_grad
from l2o.meta.interface import LearnedOptimizer
from l2o.tasks import Task

TARGETS = ("raw", "update")


@dataclass(frozen=True)
class RecordConfig:
    # Many coordinates with a few windows each fit better than a few with many: each coordinate's
    # history is its own.
    steps: int = option(1000, "rollout steps per seed")
    seeds: tuple[int, ...] = option(tuple(range(8)), "optimizees rolled out (eval split)")
    coords_per_tensor: int = option(48, "coordinates tracked per parameter tensor")
    window: int = option(20, "lags per row")
    windows_per_coord: int = option(5, "random window placements per tracked coordinate")
    features: tuple[str, ...] = option(BUILTIN, "features recorded at every lag")
    split: str = option("eval", "data split of the rollouts")
    seed: int = option(0, "coordinate choice and window placement")

    def __post_init__(self):
        if self.window > self.steps or min(self.steps, self.window, self.coords_per_tensor,
                                           self.windows_per_coord) < 1:
            raise ValueError("steps, window, coords_per_tensor and windows_per_coord must be >= 1, window <= steps")


def default_features(model: str) -> list[str]:
    """The inputs distillation offers by default: what the L2O reads, and the long memory it keeps.

    A trained LSTM's output depends on far more than a 20-step window of its inputs: its cell states
    integrate mt over hundreds of steps. The EMAs of mt over ~10, 50 and 200 steps and the step count
    stand for that memory. DM reads only the raw gradient, yet learns to normalise it as RNNprop does,
    so it is offered the normalised features and √v̂ as well. ``benchmarks/distill_memory.py`` measures
    how much of an L2O's output each feature set can explain.
    """
    memory = ["mt_ema90", "mt_ema98", "mt_ema995", "step"]
    return {"dm": ["mt", "gt", "g", "sqrt_vhat", *memory], "rp": ["mt", "gt", *memory],
            "rp_si": ["mt", "gt", "m_p3", *memory]}.get(model, ["mt", "gt", *memory])


@dataclass
class Dataset:
    frame: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def xy(self, target: str = "raw", columns: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        cols = list(columns or self.manifest["feature_columns"])
        return self.frame[cols].to_numpy(np.float64), self.frame[target].to_numpy(np.float64), cols


@torch.no_grad()
def record(l2o: LearnedOptimizer, task: Task, config: RecordConfig = RecordConfig(),
           source: str | None = None, chunk_size: int | None = CPU_CHUNK) -> Dataset:
    """Rolls out and records ``config.seeds``. The L2O steps through the coordinates in chunks of
    ``chunk_size``, each with its own state (see ``l2o.learned.lstm.CPU_CHUNK``). Every coordinate is
    independent, so the rows do not depend on the chunking as long as ``chunk_size`` is a multiple of 64
    (a chunk ending mid-vector is finished by scalar code, which can differ in the last bit)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    beta, eps = getattr(l2o.config, "beta", 0.95), getattr(l2o.config, "eps", 1e-8)
    extractor = FeatureExtractor(config.features, beta, eps)  # the L2O's own β and ε
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
                rows.append(np.concatenate([lags.reshape(-1), [raw_hist[end, j], upd_hist[end, j], seed,
                                                               chosen[j], end]]))
        columns = feature_columns(config.features, range(config.window))
        cols = columns + ["raw", "update", "seed", "coordinate", "step"]
        frames.append(pd.DataFrame(np.array(rows).reshape(-1, len(cols)), columns=cols))
    frame = pd.concat(frames, ignore_index=True)
    for c in ("seed", "coordinate", "step"):
        frame[c] = frame[c].astype(np.int64)
    manifest = {"source_checkpoint": source, "model": getattr(l2o.config, "model", l2o.kind),
                "task": task.describe(), "config": to_dict(config), "feature_names": list(config.features),
                "feature_columns": feature_columns(config.features, range(config.window)),
                "targets": list(TARGETS), "rows": len(frame), "skipped_zero_gradient": skipped,
                "update_of_raw": str(l2o.squash_expr(sp.Symbol("raw")))}
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
