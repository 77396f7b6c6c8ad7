"""Ray scaling on this machine: meta-training with 2 Ray Train workers vs 1, dataset generation with 2
actors vs 1 (one torch thread each).

    python benchmarks/ray_scaling.py [--repeats 3] [--epochs 4] [--epoch-len 400] [--seeds 8] [--steps 300]

Throughput of meta-training = unroll windows per second over all workers, timed inside the training
loop from the end of the first epoch (start-up and warm-up excluded; no evaluations); of generation =
rollout seeds per second, timed after the actors have loaded the checkpoint and their data. The 1 and
2 runs alternate (1, 2, then 2, 1, ...) ``--repeats`` times, so that a change in the machine's speed during
the benchmark (it shares its host) falls on both sides of a pair; each pair gives a ratio, and the
scaling reported is the median of those ratios (every pair is printed). Starts a local Ray on
loopback unless ``RAY_ADDRESS`` is set.
Prints a table; the last line is one JSON object with ``train_scaling_2`` and ``generate_scaling_2``.
The rows a seed produces do not depend on the actor count (checked here as well).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.config import GenerateJob, MetaTrainJob, build_job  # noqa: E402
from l2o import machine  # noqa: E402
from l2o.config import replace  # noqa: E402


def train_throughput(workers: int, args, storage: str, name: str) -> float:
    from cluster.train import meta_train

    job = build_job(MetaTrainJob, {"task": {"name": "mnist_mlp", "options": {"batch_size": 128}},
                                   "meta": {"epochs": args.epochs, "epoch_len": args.epoch_len, "unroll": 20,
                                            "eval_every": 10**6},
                                   "train": {"num_workers": workers, "checkpoint_every": 10**6},
                                   "storage": storage, "name": name})
    result = meta_train(job)
    if result.error:
        raise RuntimeError(result.error)
    return result.metrics["windows_per_s"]  # all workers, after the first (warm-up) epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating 1-vs-2 pairs of each kind (default: 3)")
    ap.add_argument("--epochs", type=int, default=4, help="meta-training epochs per run (default: 4)")
    ap.add_argument("--epoch-len", type=int, default=400, help="steps per epoch (default: 400)")
    ap.add_argument("--seeds", type=int, default=8, help="rollout seeds to generate (default: 8)")
    ap.add_argument("--steps", type=int, default=300, help="steps per rollout (default: 300)")
    args = ap.parse_args()
    print(machine.summary())
    if args.repeats < 1 or args.epochs < 2:
        ap.error("--repeats must be >= 1 and --epochs >= 2 (the first epoch is warm-up)")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from cluster.generate import generate
    from l2o.distill.record import load_dataset

    def start() -> None:  # each phase on a fresh local Ray: no processes left from the other phase
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")

    def order(r: int) -> tuple[int, int]:  # 1,2 then 2,1: a steady drift of speed cancels over two pairs
        return (1, 2) if r % 2 == 0 else (2, 1)

    train, gen = [], []  # one {1: ..., 2: ...} pair of throughputs per repeat
    with tempfile.TemporaryDirectory() as tmp:
        start()
        for r in range(args.repeats):
            pair = {w: train_throughput(w, args, tmp, f"scaling-{r}-{w}") for w in order(r)}
            train.append({w: pair[w] for w in (1, 2)})
        ray.shutdown()
        start()
        checkpoint = next(Path(tmp, "ray", "scaling-0-1").glob("checkpoint_*/checkpoint.pt"))
        job = build_job(GenerateJob, {"checkpoint": str(checkpoint), "record": {
            "steps": args.steps, "seeds": list(range(args.seeds)), "coords_per_tensor": 8}})
        frames = {}
        for r in range(args.repeats):
            pair = {}
            for n in order(r):
                out = f"{tmp}/gen-{r}-{n}"
                manifest = generate(replace(job, actors={"num_actors": n}, out=out), progress=False)
                pair[n] = args.seeds / manifest["generate_seconds"]
                if r == 0:
                    frames[n] = load_dataset(out).frame
            gen.append({n: pair[n] for n in (1, 2)})
    ray.shutdown()
    identical = bool(frames[1].equals(frames[2]))
    scaling = {kind: [p[2] / p[1] for p in pairs] for kind, pairs in (("train", train), ("generate", gen))}
    print(f"{'work':34s} {'pair':>4s} {'1 (per s)':>10s} {'2 (per s)':>10s} {'scaling':>8s}")
    for kind, label, pairs in (("train", "meta-training unroll windows", train),
                               ("generate", "dataset generation seeds", gen)):
        for r, p in enumerate(pairs):
            print(f"{label:34s} {r:4d} {p[1]:10.3f} {p[2]:10.3f} {scaling[kind][r]:8.2f}")
        print(f"{label + ', median':34s} {'':4s} {'':10s} {'':10s} {statistics.median(scaling[kind]):8.2f}")
    print(f"identical rows with 1 and 2 actors: {identical}")
    print(json.dumps({"machine": machine.describe(),
                      "train_windows_per_s": train, "generate_seeds_per_s": gen,
                      "train_scaling_pairs": [round(x, 3) for x in scaling["train"]],
                      "generate_scaling_pairs": [round(x, 3) for x in scaling["generate"]],
                      "train_scaling_2": round(statistics.median(scaling["train"]), 3),
                      "generate_scaling_2": round(statistics.median(scaling["generate"]), 3),
                      "identical_rows": identical}))


if __name__ == "__main__":
    main()
