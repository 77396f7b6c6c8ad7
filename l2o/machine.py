"""The machine a figure was measured on: CPU model, cores, caches and vector extensions, as the OS reports
them (``/proc/cpuinfo`` and ``/sys/devices/system/cpu``; elsewhere what ``platform`` knows).

Benchmarks print ``summary()`` first and put ``describe()`` in their JSON line, so every row of
``benchmarks/RESULTS.md`` can name its machine.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import statistics
import time
from pathlib import Path

import torch

# the extensions that decide how the kernels vectorise, in the order they are printed
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "amx_tile", "asimd", "sve", "sve2")


@functools.lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # one processor is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def flags() -> set[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm)."""
    info = cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def caches(cpu: int = 0) -> dict[str, int]:
    """Bytes of each cache one core sees, e.g. ``{"L1d": 49152, "L1i": 32768, "L2": 2097152, "L3": …}``."""
    out: dict[str, int] = {}
    for index in sorted(Path(f"/sys/devices/system/cpu/cpu{cpu}/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:], 1)
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[name] = int(size.rstrip("KMG")) * unit
    return out


def describe() -> dict:
    """What a benchmark's JSON line says about its machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpuinfo().get("model name") or platform.processor() or platform.machine(),
            "cpus": cpus, "caches": caches(), "vector": [f for f in VECTOR_FLAGS if f in flags()],
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def _bytes(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 2**10:g} KiB"


def summary() -> str:
    """One line: ``machine: <CPU model>, 2 CPUs; L1d 48 KiB, L2 2 MiB, L3 …; avx2 fma avx512f … (torch …)``."""
    d = describe()
    cache = ", ".join(f"{name} {_bytes(size)}" for name, size in d["caches"].items() if name != "L1i")
    return (f"machine: {d['cpu']}, {d['cpus']} CPUs; {cache or 'caches unknown'}; "
            f"{' '.join(d['vector']) or 'no vector flags known'} (torch {d['torch']}, "
            f"{d['torch_capability']}, {d['torch_threads']} threads)")


def _median_seconds(fn, reps: int) -> float:
    fn()  # warm-up: pages touched, kernels chosen
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory_bandwidth(mib: int = 256, reps: int = 5, device: str = "cpu") -> float:
    """Bytes per second of ``dst.add_(src)`` on float32 buffers of ``mib`` MiB, far larger than any
    cache: two read and one written in place, the access pattern of an optimizer step (a plain copy
    would also read the destination before writing it, and understate what a step can move)."""
    src = torch.ones(mib * 2**18, device=device)
    dst = torch.zeros_like(src)
    sync = torch.cuda.synchronize if src.is_cuda else (lambda: None)
    return 3 * src.numel() * 4 / _median_seconds(lambda: (dst.add_(src), sync()), reps)


def matmul_flops(n: int = 1024, reps: int = 5) -> float:
    """Float32 FLOP/s of an ``n``×``n`` matrix product on torch's current threads (2·n³ per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / _median_seconds(lambda: a @ b, reps)


# glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit machines
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX = -1, -3, 32 * 2**20


def keep_freed_memory(limit_bytes: int) -> bool:
    """Asks glibc's malloc to keep up to ``limit_bytes`` of freed memory for reuse instead of returning
    it to the OS, and to serve blocks of up to 32 MiB from that memory rather than from new mappings.

    A meta-training window allocates the cell's kept activations step by step (about 0.5 GB for an
    MNIST MLP) and frees them all in its backward; by default glibc hands them back at once, so every
    window touches fresh pages again (tens of thousands of page faults an unroll). Process-wide and
    never undone; False where the C library is not glibc."""
    if limit_bytes <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = min(int(limit_bytes), 2**31 - 1)
    return bool(mallopt(_M_TRIM_THRESHOLD, limit)) and bool(mallopt(_M_MMAP_THRESHOLD, min(limit, _MMAP_THRESHOLD_MAX)))
