"""Where a ``SymbolicOptimizer(impl="compile")`` step spends its time on a GPU, beside torch's fused Adam.

On ResNet-50's parameters (as ``optimizer_step.py``): each step timed three ways — synchronised per
step, the host's launch time alone (no synchronisation), and CUDA events over back-to-back steps — and
the compile path's three device parts alone (the gradient gather, the compiled rule kernel, the
multi-tensor parameter add). When the launch time is near the synchronised time the step is bound by
host work, not by the kernels. Prints a table and the memory floor of both.

    python benchmarks/symbolic_step_parts.py [--reps 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from l2o import machine
from l2o.optim import SymbolicOptimizer

RULE = "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"


def host_ms(fn, reps: int, sync: bool) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def event_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100, help="timed repetitions of each figure (default: 100)")
    args = ap.parse_args()
    torch.manual_seed(0)
    params = [p.detach().cuda().requires_grad_() for p in torchvision.models.resnet50().parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    grads = [p.grad for p in params]
    rows = {}
    for name, opt in (("adam fused", torch.optim.Adam(params, lr=1e-3, fused=True)),
                      ("symbolic compile", SymbolicOptimizer(params, RULE, lr=1e-3, impl="compile"))):
        rows[f"{name}: step, synchronised"] = host_ms(opt.step, args.reps, sync=True)
        rows[f"{name}: step, host launch time"] = host_ms(opt.step, args.reps, sync=False)
        rows[f"{name}: step, events back to back"] = event_ms(opt.step, args.reps)
    (rule,) = opt._flat.values()
    (flat,) = rule.sets.values()
    rows["  gather (foreach copy)"] = event_ms(lambda: torch._foreach_copy_(flat.g_views, grads), args.reps)
    rows["  rule kernel (compiled)"] = event_ms(lambda: rule.fn(flat.g, flat.t, *flat.moments), args.reps)
    rows["  parameter add (foreach)"] = event_ms(lambda: torch._foreach_add_(params, flat.g_views, alpha=0.0),
                                                 args.reps)
    n = sum(p.numel() for p in params)
    print(machine.summary())  # the host CPU
    print(f"ResNet-50 parameters: {n / 1e6:.1f} M in {len(params)} tensors on {torch.cuda.get_device_name()}, "
          f"torch {torch.__version__}")
    for name, ms in rows.items():
        print(f"{name:42s} {ms:8.3f} ms")
    gbytes = lambda passes: passes * 4 * n / 1e9  # noqa: E731
    print(f"bytes moved: adam fused {gbytes(7):.2f} GB (p, g, m, v read; p, m, v written); symbolic compile "
          f"{gbytes(11):.2f} GB (gather 2, rule 6, add 3 passes)")


if __name__ == "__main__":
    main()
