"""Optimizer step time and state memory on ResNet-50's parameter set (25.6 M parameters, 161 tensors).

Compares, in one run on the same parameters and gradients: ``SymbolicOptimizer`` on an RP-style rule
(``RULE``: two EMA features, m and v, read at lags 0 and 1) through each implementation, torch's Adam
(foreach; fused too), SGD with momentum (foreach) and the LSTM optimizer (RP 2×20, chunked).

    python benchmarks/optimizer_step.py [--threads 1] [--device cpu|cuda] [--reps 10] [--lstm-reps 2] [--rule R]

Each figure is the median over ``--reps`` steps after two warm-up steps (``torch.compile`` compiles in
its warm-up); the timed steps go round the optimizers in turn. The compile path also holds a flat
gradient buffer (one float a parameter), shown as workspace beside the state. Each row's floor is the
time to move the bytes a step must move at the memory bandwidth measured in the same run
(``l2o.machine.memory_bandwidth``): parameters read and written, gradients read, state read and
written (for Adam 7 floats a parameter). Prints the machine, then a table; the last line is one JSON
object with ``ratio_vs_adam_foreach`` (best SymbolicOptimizer path / Adam foreach),
``ratio_vs_adam_fused``, ``state_bytes_ratio_vs_adam``, ``floor_ms`` and ``machine``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torchvision

from l2o import machine
from l2o.learned import CoordinateLSTM, lstm_config, native
from l2o.optim import LSTMOptimizer, SymbolicOptimizer

RULE = "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"


def state_bytes(opt: torch.optim.Optimizer) -> int:
    if isinstance(opt, (LSTMOptimizer, SymbolicOptimizer)):
        return opt.state_bytes()
    return sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
               if isinstance(t, torch.Tensor))


def workspace_bytes(opt: torch.optim.Optimizer) -> int:
    return opt.workspace_bytes() if isinstance(opt, SymbolicOptimizer) else 0


def measure(makers: dict, params, grads, reps: dict, device: str) -> dict:
    """Per optimizer (name → constructor): median step seconds, state bytes, workspace bytes. Each
    has its own copy of the parameters; after two warm-up steps each, the timed steps go round the
    optimizers in turn, so a drift in the machine's speed falls on all of them alike."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    opts = {}
    for name, make in makers.items():
        ps = [p.detach().clone().requires_grad_() for p in params]
        for p, g in zip(ps, grads):
            p.grad = g
        opts[name] = make(ps)
        for _ in range(2):
            opts[name].step()
    times: dict[str, list[float]] = {name: [] for name in opts}
    for k in range(max(reps.values())):
        for name, opt in opts.items():
            if k < reps[name]:
                sync()
                t0 = time.perf_counter()
                opt.step()
                sync()
                times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), state_bytes(opt), workspace_bytes(opt))
            for name, opt in opts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--reps", type=int, default=10, help="timed steps per optimizer (default: 10)")
    ap.add_argument("--lstm-reps", type=int, default=2, help="timed steps of the LSTM optimizer; 0 skips it")
    ap.add_argument("--rule", default=RULE, help="the SymbolicOptimizer's rule (default: the RP-style RULE)")
    ap.add_argument("--lstm-chunk", type=int, default=1 << 20, help="LSTM chunk size in coordinates")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = [p.detach().to(args.device) for p in torchvision.models.resnet50().parameters()]
    grads = [torch.randn_like(p) * 1e-3 for p in params]
    cuda = args.device.startswith("cuda")
    candidates = {
        "adam foreach": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        "adam fused": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
        "sgd momentum foreach": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, foreach=True),
    }
    for impl in ("single", "foreach", "compile") + (() if cuda else ("native",)):
        candidates[f"symbolic {impl}"] = lambda ps, impl=impl: SymbolicOptimizer(ps, args.rule, impl=impl)
    reps = {name: args.reps for name in candidates}
    if args.lstm_reps:
        torch.manual_seed(0)
        l2o = CoordinateLSTM(lstm_config("rp")).to(args.device)
        name = f"lstm rp 2x20 (chunk {args.lstm_chunk})"
        candidates[name] = lambda ps: LSTMOptimizer(ps, l2o, chunk_size=args.lstm_chunk)
        reps[name] = args.lstm_reps
    rows = measure(candidates, params, grads, reps, args.device)
    bandwidth = machine.memory_bandwidth(device=args.device)
    param_bytes = sum(p.numel() * p.element_size() for p in params)

    def floor(state: int) -> float:  # seconds: p read + written, g read, state read + written
        return (3 * param_bytes + 2 * state) / bandwidth

    adam_t, adam_b, _ = rows["adam foreach"]
    print(machine.summary())
    print("native kernels' flags: " + " ".join(native.cflags()))
    print(f"memory bandwidth (a += b, 256 MiB) {bandwidth / 1e9:.1f} GB/s")
    print(f"ResNet-50 parameters: {sum(p.numel() for p in params) / 1e6:.1f} M in {len(params)} tensors, "
          f"device {args.device}, {args.threads} thread(s); rule: {args.rule}")
    print(f"{'optimizer':34s} {'ms/step':>10s} {'× adam foreach':>15s} {'× adam fused':>13s} {'state MB':>10s} "
          f"{'× adam':>8s} {'workspace MB':>13s} {'floor ms':>9s} {'× floor':>8s}")
    fused_t = rows["adam fused"][0]
    for name, (t, b, w) in rows.items():
        print(f"{name:34s} {t * 1e3:10.3f} {t / adam_t:15.2f} {t / fused_t:13.2f} {b / 2**20:10.1f} "
              f"{b / adam_b:8.2f} {w / 2**20:13.1f} {floor(b) * 1e3:9.1f} {t / floor(b):8.2f}")
    symbolic = {k: v for k, v in rows.items() if k.startswith("symbolic")}
    best = min(symbolic, key=lambda k: symbolic[k][0])
    print(json.dumps({
        "device": args.device, "threads": args.threads, "machine": machine.describe(),
        "native_cflags": native.cflags(), "memory_bandwidth_gb_s": round(bandwidth / 1e9, 2),
        "rule": args.rule,
        "best_symbolic_path": best.split()[-1],
        "ms_per_step": {k: round(v[0] * 1e3, 3) for k, v in rows.items()},
        "state_mb": {k: round(v[1] / 2**20, 1) for k, v in rows.items()},
        "floor_ms": {k: round(floor(v[1]) * 1e3, 3) for k, v in rows.items()},
        "workspace_mb": {k: round(v[2] / 2**20, 1) for k, v in rows.items() if v[2]},
        "ratio_vs_adam_foreach": round(symbolic[best][0] / adam_t, 3),
        "ratio_vs_adam_fused": round(symbolic[best][0] / rows["adam fused"][0], 3),
        "state_bytes_ratio_vs_adam": round(symbolic[best][1] / adam_b, 3),
    }))


if __name__ == "__main__":
    main()
