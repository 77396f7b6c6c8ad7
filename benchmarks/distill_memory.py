"""How much of a learned optimizer's output its recent inputs can explain: what distillation has to work with.

Two measurements on one checkpoint, both on held-out (eval split) rollouts:

1. Memory. The L2O is rolled out while a few hundred random coordinates are tracked; then, at many
   steps t, its network is rerun from a zeroed hidden state over only the last W inputs of each
   coordinate, and the output at t is compared with the one it really gave (R²). An L2O whose output is
   a function of a W-step window scores ≈ 1 from that W on.
2. Tree fits. A distillation dataset (``l2o.distill.record``, every feature) is split by rollout seed,
   and a gradient-boosted tree ensemble (sklearn's ``HistGradientBoostingRegressor``: no equation, just
   a flexible fit) is trained per feature set on the first seeds and scored on the last two: which
   feature sets carry the information. It is a reference, not a bound: trees fit smooth functions of
   many inputs poorly (on a short-memory RP they reached 0.66 on held-out rollouts, the distilled
   equation 0.94 on held-out rows).

    python benchmarks/distill_memory.py CHECKPOINT [--task mnist_mlp] [--seeds 8] [--coords 48]

Prints two tables; the last line is one JSON object with both.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from l2o import machine
from l2o.distill.engines import r2_score

from l2o.distill.record import RecordConfig, default_features, record
from l2o.learned import l2o_from_checkpoint
from l2o.meta.flat import FlatParams, loss_and_grad
from l2o.tasks import make_task

WINDOWS = (1, 5, 20, 50, 100, 200)

@torch.no_grad()
def memory(l2o, task, seeds: int, coords: int, steps: int) -> dict[int, float]:
    """Replay R² per window length W (see the module docstring)."""
    inputs, outputs = [], []
    for seed in range(seeds):
        params = task.init(seed)
        layout = FlatParams(params)
        theta = layout.flatten(params)
        idx = torch.from_numpy(np.random.default_rng(seed).choice(theta.numel(), coords, replace=False))
        state, batches, xs, raws = l2o.init_state(theta), task.batches("eval", seed), [], []
        for _ in range(steps):
            _, grad = loss_and_grad(task, layout, theta, next(batches))
            x, _ = l2o.inputs(grad, state)
            raw, state = l2o.raw_step(grad, state)
            theta = theta + l2o.squash(raw)
            xs.append(x[:, idx].clone())
            raws.append(raw[idx].clone())
        inputs.append(torch.stack(xs))
        outputs.append(torch.stack(raws))
    x, y = torch.cat(inputs, 2), torch.cat(outputs, 1)  # (steps, features, coords), (steps, coords)
    ends = range(max(WINDOWS), steps, 37)
    out = {}
    for w in WINDOWS:
        preds = []
        for end in ends:
            hidden = tuple(torch.zeros(h, x.shape[2], dtype=x.dtype) for h in l2o.config.hidden for _ in (0, 1))
            for s in range(end - w + 1, end + 1):
                raw, hidden = l2o.network(x[s], hidden)
            preds.append(raw)
        out[w] = r2_score(torch.cat([y[e] for e in ends]).double().numpy(), torch.cat(preds).double().numpy())
    return out

def tree_fits(frame, feature_sets: dict[str, list[str]], target: str) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    seed = frame["seed"].to_numpy()
    train, test = seed < seed.max() - 1, seed >= seed.max() - 1
    y = frame[target].to_numpy()
    out = {}
    for name, cols in feature_sets.items():
        X = frame[cols].to_numpy()
        model = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, random_state=0).fit(X[train], y[train])
        out[name] = r2_score(y[test], model.predict(X[test]))
    return out

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--task", default="mnist_mlp")
    ap.add_argument("--seeds", type=int, default=8, help="rollouts recorded for the tree fits (default: 8)")
    ap.add_argument("--coords", type=int, default=48, help="coordinates tracked per tensor (default: 48)")
    ap.add_argument("--steps", type=int, default=1000, help="rollout steps (default: 1000)")
    ap.add_argument("--replay-seeds", type=int, default=2, help="rollouts for the memory table (default: 2)")
    ap.add_argument("--replay-coords", type=int, default=300, help="coordinates replayed (default: 300)")
    ap.add_argument("--target", default="raw", choices=("raw", "update"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    print(machine.summary())
    if args.threads:
        torch.set_num_threads(args.threads)

    l2o = l2o_from_checkpoint(args.checkpoint)
    task = make_task(args.task)
    t0 = time.perf_counter()
    mem = memory(l2o, task, args.replay_seeds, args.replay_coords, args.steps)
    print(f"memory: the {l2o.config.model} network rerun from a zeroed state over the last W inputs "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"{'W':>6}  {'R² of its own output':>22}")
    for w, v in mem.items():
        print(f"{w:>6}  {v:>22.4f}")

    t0 = time.perf_counter()
    ds = record(l2o, task, RecordConfig(steps=args.steps, seeds=tuple(range(args.seeds)),
                                        coords_per_tensor=args.coords))
    frame = ds.frame
    reads = list(l2o.config.features) if l2o.config.preprocess == "elu_linear" else ["g"]
    lag0 = lambda feats: [f"{f}_0" for f in feats]  # noqa: E731
    lags = lambda feats: [f"{f}_{k}" for f in feats for k in range(20)]  # noqa: E731
    sets = {f"what it reads ({','.join(reads)}), lag 0": lag0(reads),
            "what it reads, lags 0-19": lags(reads),
            "what it reads, lag 0, and step": lag0([*reads, "step"]),
            "distill defaults, lag 0": lag0(default_features(l2o.config.model)),
            "every feature, lag 0": lag0(ds.manifest["feature_names"])}
    trees = tree_fits(frame, sets, args.target)
    print(f"\ntree ensemble on {len(frame)} rows, R² on the last two of {args.seeds} rollouts "
          f"({time.perf_counter() - t0:.0f} s)")
    width = max(map(len, trees))
    for name, v in trees.items():
        print(f"{name:<{width}}  {v:8.4f}")
    print(json.dumps({"machine": machine.describe(),
                      "checkpoint": args.checkpoint, "model": l2o.config.model, "target": args.target,
                      "memory_r2": {str(k): v for k, v in mem.items()}, "trees_r2": trees, "rows": len(frame)}))

if __name__ == "__main__":
    main()
