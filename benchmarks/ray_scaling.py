"""Ray scaling on this machine: meta-training with 2 Ray Train workers vs 1, dataset generation with 2
actors vs 1 (one torch thread each).

    python benchmarks/ray_scaling.py [--epochs 4] [--epoch-len 400] [--seeds 8] [--steps 300]

Throughput of meta-training = unroll windows per second over all workers, timed inside the training
loop from the end of the first epoch (start-up and warm-up excluded; no evaluations); of generation =
rollout seeds per second, timed after the actors have loaded the checkpoint and their data. Starts a
local Ray on loopback unless ``RAY_ADDRESS`` is set.
Prints a table; the last line is one JSON object with ``train_scaling_2`` and ``generate_scaling_2``.
The rows a seed produces do not depend on the actor count (checked here as well).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.config import GenerateJob, MetaTrainJob  # noqa: E402


def train_throughput(workers: int, args, storage: str) -> float:
    from cluster.train import meta_train

    job = MetaTrainJob(model="rp", task="mnist_mlp", task_options={"batch_size": 128}, num_workers=workers,
                       meta={"epochs": args.epochs, "epoch_len": args.epoch_len, "unroll": 20, "eval_every": 10**6},
                       checkpoint_every=10**6, storage=storage, name=f"scaling-{workers}")
    result = meta_train(job)
    if result.error:
        raise RuntimeError(result.error)
    return result.metrics["windows_per_s"]  # all workers, after the first (warm-up) epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="meta-training epochs per run (default: 4)")
    ap.add_argument("--epoch-len", type=int, default=400, help="steps per epoch (default: 400)")
    ap.add_argument("--seeds", type=int, default=8, help="rollout seeds to generate (default: 8)")
    ap.add_argument("--steps", type=int, default=300, help="steps per rollout (default: 300)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from cluster.generate import generate
    from l2o.distill.record import load_dataset

    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        train = {w: train_throughput(w, args, tmp) for w in (1, 2)}
        checkpoint = next(Path(tmp, "ray", "scaling-1").glob("checkpoint_*/checkpoint.pt"))
        job = GenerateJob(checkpoint=str(checkpoint), record={"steps": args.steps, "seeds": list(range(args.seeds)),
                                                               "coords_per_tensor": 8})
        gen, frames = {}, {}
        for n in (1, 2):
            manifest = generate(dataclasses.replace(job, num_actors=n, out=f"{tmp}/gen-{n}"), progress=False)
            gen[n] = args.seeds / manifest["generate_seconds"]
            frames[n] = load_dataset(f"{tmp}/gen-{n}").frame
    ray.shutdown()
    identical = bool(frames[1].equals(frames[2]))
    print(f"{'work':34s} {'1 (per s)':>10s} {'2 (per s)':>10s} {'scaling':>8s}")
    print(f"{'meta-training unroll windows':34s} {train[1]:10.2f} {train[2]:10.2f} {train[2] / train[1]:8.2f}")
    print(f"{'dataset generation seeds':34s} {gen[1]:10.3f} {gen[2]:10.3f} {gen[2] / gen[1]:8.2f}")
    print(f"identical rows with 1 and 2 actors: {identical}")
    print(json.dumps({"train_windows_per_s": train, "generate_seeds_per_s": gen,
                      "train_scaling_2": round(train[2] / train[1], 3), "generate_scaling_2": round(gen[2] / gen[1], 3),
                      "identical_rows": identical}))


if __name__ == "__main__":
    main()
