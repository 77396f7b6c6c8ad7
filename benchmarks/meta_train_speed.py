"""Meta-training throughput: seconds per unroll of 20 steps on the MNIST MLP (batch 128).

Measures ``MetaTrainer`` windows for RP (at the yardstick's sizes: Linear(2→20)+ELU, 2 LSTM layers of
20, which are also RP's defaults), RP_si and DM at their defaults, and runs the fixed naive yardstick
(``../shared/reference/naive_rp_meta.py`` by default) in the same run for the ratio.

    python benchmarks/meta_train_speed.py [--threads 1] [--device cpu|cuda] [--reps 5] [--rounds 3] [--profile 20] [--compile]

The measurements alternate, so that a drift in the machine's speed falls on all of them alike: each of
``--rounds`` rounds runs the yardstick (its mean over ``max(2, reps // 2)`` unrolls, in a subprocess),
then one epoch of ``--reps`` windows of each model (after one warm-up epoch each, not timed). Each
figure is the median over the rounds. Prints a table; the last line is one JSON object with
``rp_2x20_seconds_per_unroll``, ``naive_seconds_per_unroll`` (null without the yardstick),
``speedup_vs_naive`` and ``naive_rounds`` (the yardstick's figure in each round). ``--profile N``
first prints torch.profiler's N most expensive operators over ``--reps`` RP windows (and the number of
kernel launches on CUDA), to see where an unroll's time goes. ``--compile`` also times RP with
``MetaTrainConfig(compile=True)``; ``rp_2x20_seconds_per_unroll`` is then the faster of the two forms,
and both are in the JSON.

Beside each figure stands its FLOP floor: the floating-point operations of one unroll, counted by
``torch.utils.flop_counter`` on the torch path of the same window (matrix products, forward and
backward), at the float32 matrix-product rate measured in the same run on the same threads.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from l2o import machine
from l2o.learned import CoordinateLSTM, lstm_config, native
from l2o.meta import MetaTrainConfig, MetaTrainer
from l2o.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAIVE = ROOT.parent / "shared" / "reference" / "naive_rp_meta.py"


def _trainer(model: str, device: str, unroll: int, compile: bool = False) -> MetaTrainer:
    task = make_task("mnist_mlp", device=device, batch_size=128)
    torch.manual_seed(0)
    l2o = CoordinateLSTM(lstm_config(model)).to(device)
    trainer = MetaTrainer(l2o, task, MetaTrainConfig(unroll=unroll, grad_clip=1.0, compile=compile))
    trainer.train_epoch(0, horizon=unroll * 2)  # warm-up: data on device, allocator, kernels, compilation
    return trainer


def epoch_seconds(trainer: MetaTrainer, epoch: int, reps: int, device: str, unroll: int = 20) -> float:
    """Seconds per unroll of one epoch of ``reps`` windows."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    trainer.train_epoch(epoch, horizon=unroll * reps)
    sync()
    return (time.perf_counter() - t0) / reps


def unroll_flops(model: str, device: str, unroll: int = 20) -> int:
    """FLOPs of one unroll window (products only), counted on the torch path of the LSTM's cell."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer = _trainer(model, device, unroll)
    trainer.l2o.impl = "torch"  # the native cell is invisible to the counter; its maths is the same
    with FlopCounterMode(display=False) as counter:
        trainer.train_epoch(1, horizon=unroll)
    return counter.get_total_flops()


def profile(device: str, reps: int, top: int, unroll: int = 20) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    trainer = _trainer("rp", device, unroll)
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        trainer.train_epoch(1, horizon=unroll * reps)
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"profile of {reps} RP windows on {device}:")
    print(events.table(sort_by=sort, row_limit=top))
    if cuda:
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        print(f"kernel launches per unroll: {launches / reps:.0f}")


def naive_seconds(path: Path, threads: int, device: str, reps: int) -> float | None:
    if not path.exists():
        return None
    out = subprocess.run([sys.executable, str(path), "--threads", str(threads), "--device", device,
                          "--reps", str(reps)], capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds_per_unroll"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--reps", type=int, default=5, help="unrolls timed per model (default: 5)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds of measurement (default: 3)")
    ap.add_argument("--naive", type=Path, default=DEFAULT_NAIVE, help="the yardstick script")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="first print the N costliest operators")
    ap.add_argument("--compile", action="store_true", help="also time RP with MetaTrainConfig(compile=True)")
    args = ap.parse_args()
    if args.rounds < 1 or args.reps < 1:
        ap.error("--rounds and --reps must be >= 1")
    torch.set_num_threads(args.threads)
    if args.profile:
        profile(args.device, args.reps, args.profile)

    models = {m: (m, False) for m in ("rp", "rp_si", "dm")} | ({"rp_compiled": ("rp", True)} if args.compile else {})
    trainers = {name: _trainer(m, args.device, 20, compile) for name, (m, compile) in models.items()}
    naive_rounds, samples = [], {name: [] for name in models}
    for r in range(args.rounds):  # alternated: yardstick, then each model, round after round
        naive_rounds.append(naive_seconds(args.naive, args.threads, args.device, max(2, args.reps // 2)))
        for name, trainer in trainers.items():
            samples[name].append(epoch_seconds(trainer, r + 1, args.reps, args.device))
    naive = statistics.median(naive_rounds) if None not in naive_rounds else None
    rows = [(name, statistics.median(samples[name])) for name in models]
    rate = machine.matmul_flops() if args.device == "cpu" else None
    flops = {model: unroll_flops(model, args.device) for model, _ in rows if model != "rp_compiled"}
    flops["rp_compiled"] = flops["rp"]
    print(machine.summary())
    print("native kernels' flags: " + " ".join(native.cflags()))
    print(f"device={args.device} threads={args.threads}" +
          (f"; float32 1024² products {rate / 1e9:.1f} GFLOP/s" if rate else ""))

    def floor(model: str) -> str:  # GFLOP of an unroll, and the seconds they take at the measured rate
        return f"{flops[model] / 1e9:8.3f} " + (f"{flops[model] / rate:10.4f}" if rate else f"{'n/a':>10}")

    print(f"{'optimizer':<28} {'s/unroll':>10} {'speedup vs naive':>18} {'GFLOP':>8} {'floor s':>10}")
    if naive is not None:
        print(f"{'naive RP 2x20 (yardstick)':<28} {naive:>10.4f} {1.0:>18.2f} {floor('rp')}")
    names = {"rp": "rp 2x20 (yardstick sizes)", "rp_si": "rp_si 2x20 (default)", "dm": "dm 2x20 (default)",
             "rp_compiled": "rp 2x20, compile=True"}
    for model, sec in rows:
        ratio = f"{naive / sec:.2f}" if naive else "n/a"
        print(f"{names[model]:<28} {sec:>10.4f} {ratio:>18} {floor(model)}")
    times = dict(rows)
    rp = min(times["rp"], times.get("rp_compiled", math.inf))  # the faster of the two forms measured
    print(json.dumps({"device": args.device, "threads": args.threads, "machine": machine.describe(),
                      "native_cflags": native.cflags(), "matmul_gflop_s": rate / 1e9 if rate else None,
                      "flops_per_unroll": {m: f for m, f in flops.items() if m in times},
                      "rp_2x20_seconds_per_unroll": rp,
                      "rp_2x20_eager_seconds_per_unroll": times["rp"],
                      "rp_2x20_compiled_seconds_per_unroll": times.get("rp_compiled"),
                      "rp_si_seconds_per_unroll": times["rp_si"], "dm_seconds_per_unroll": times["dm"],
                      "naive_seconds_per_unroll": naive, "naive_rounds": naive_rounds,
                      "speedup_vs_naive": naive / rp if naive else None}))


if __name__ == "__main__":
    main()
