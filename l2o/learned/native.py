"""Native C kernels: ``native_cell.c`` (the LSTM cell) and generated rules (``l2o.optim.native_rule``),
built once per machine with the system C compiler by ``build`` and loaded by ctypes.

An LSTM step over N coordinates written as torch ops is a handful of passes over memory for the
elementwise work plus matrix products with a small inner dimension (inputs + hidden), which BLAS runs at
a fraction of this kind of CPU's speed; in C the whole cell is one pass that keeps a block of
coordinates in cache between its products and its elementwise work (vectorised: an inline exp in
float, glibc's SIMD exp in double).
The shared library is cached under ``$L2O_CACHE`` (default ``~/.cache/l2o``), keyed by the source,
the compiler, its flags and the CPU, and written atomically, so parallel processes can build it at
once. ``$L2O_NATIVE_CFLAGS`` adds compiler flags after ``FLAGS`` (``-mno-avx512f`` builds for a CPU
without AVX-512, ``-march=x86-64-v3`` for any AVX2 one). Where no compiler is found, or
``L2O_NATIVE=0``, ``kernels()`` returns None and callers use their torch path (the same maths, slower
on CPU).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from l2o import machine

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_cell.c")
# -fno-trapping-math: the kernels never read the floating-point exception flags, and without it gcc will
# not if-convert a loop whose selects guard a multiplication or division (tanh's clamps, the NaN check)
# unless the target has masked vector operations: on CPUs without AVX-512 such loops ran scalar.
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-fPIC", "-shared"]
# Tried first: OpenMP threads. The library then binds to the libgomp torch has already loaded (same
# soname), so its parallel loops use torch's thread pool and follow torch.set_num_threads.
OPENMP = ["-fopenmp"]
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
# The float kernels' inline exp (l2o_expf in native_cell.c): its largest relative error on [-87, 88],
# tested against float64 in tests/test_learned.py.
EXPF_MAX_ERROR = 2e-7


def _cpu_id() -> str:
    return " ".join(sorted(machine.flags())) + platform.machine() + machine.cpuinfo().get("model name", "")


def cflags() -> list[str]:
    """The compiler flags of every kernel: ``FLAGS``, then those of ``$L2O_NATIVE_CFLAGS``."""
    extra = os.environ.get("L2O_NATIVE_CFLAGS", "")
    try:
        return [*FLAGS, *shlex.split(extra)]
    except ValueError as err:
        raise ValueError(f"L2O_NATIVE_CFLAGS={extra!r} cannot be split into flags: {err}") from None


def _compile(cc: str, source: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        target = Path(tmp) / out.name
        base = [cc, *cflags(), "-o", str(target), str(source)]
        # libmvec is glibc-only; OpenMP may be missing (then the kernels run on one thread)
        for extra in (OPENMP + ["-lmvec", "-lm"], OPENMP + ["-DL2O_NO_MVEC", "-lm"], ["-lmvec", "-lm"],
                      ["-DL2O_NO_MVEC", "-lm"]):
            result = subprocess.run([*base, *extra], capture_output=True, text=True)
            if result.returncode == 0:
                os.replace(target, out)
                return
        raise RuntimeError(f"compiling {source.name} failed: {result.stderr.strip()[:500]}")


def enabled() -> bool:
    return os.environ.get("L2O_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def build(source: str, name: str) -> ctypes.CDLL | None:
    """Compile C ``source`` into a shared library cached under ``name`` and load it; None when native
    code is off or cannot be built here (the reason is logged)."""
    if not enabled():
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        log.info("native kernels: no C compiler found; using the torch path")
        return None
    key = hashlib.sha256((source + " ".join([cc, *cflags(), *OPENMP, _cpu_id()])).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("L2O_CACHE") or Path.home() / ".cache" / "l2o").expanduser()
    path = cache / "native" / f"{name}-{key}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                src = Path(tmp) / f"{name}.c"
                src.write_text(source)
                _compile(cc, src, path)
        return ctypes.CDLL(str(path))
    except (OSError, RuntimeError) as err:
        log.warning("native kernels %s unavailable (%s); using the torch path", name, err)
        return None


@functools.lru_cache(maxsize=1)
def kernels() -> ctypes.CDLL | None:
    """The loaded LSTM-cell library, or None when native kernels are off or cannot be built here."""
    lib = build(SOURCE.read_text(), "lstm_cell")
    if lib is not None:
        for suffix in _SUFFIX.values():
            getattr(lib, f"lstm_act_length_{suffix}").restype = ctypes.c_long
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """True when the native kernels can take these tensors (CPU, float32/64, one dtype)."""
    t0 = tensors[0]
    return (t0.device.type == "cpu" and t0.dtype in _SUFFIX and all(t.dtype == t0.dtype and t.device.type == "cpu"
                                                                      for t in tensors) and kernels() is not None)


def call(name: str, dtype: torch.dtype, *args) -> int:
    """Call kernel ``name`` for ``dtype`` and return its int result (the fused kernels: nonzero when
    they could not allocate); tensors must be contiguous (None passes NULL), ints pass as long."""
    fn = getattr(kernels(), f"{name}_{_SUFFIX[dtype]}")
    converted = []
    for a in args:
        if a is None:
            converted.append(ctypes.c_void_p(0))
        elif isinstance(a, torch.Tensor):
            assert a.is_contiguous(), name
            converted.append(ctypes.c_void_p(a.data_ptr()))
        else:
            converted.append(ctypes.c_long(a))
    return fn(*converted)
