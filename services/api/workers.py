"""CPU work in worker processes, under a time limit: parsing client text, typesetting, exporting and the
synchronous searches of ``/distill``.

The service's own threads only wait on I/O, the database and these workers, so the event loop keeps the
interpreter lock to itself and ``/healthz`` answers under load. Work that runs past its limit is stopped by
ending its pool's workers, which are then replaced. Each kind of work has its own pool, so a long search
never delays a parse.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any, Callable

from l2o.expr import EquationError, parse_equation


class WorkTimeout(TimeoutError):
    pass


def _import(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


class WorkerPool:
    """``processes`` spawned workers that import ``warm`` when they start. A time limit counts the work
    alone: a call first waits (up to ``start_s``) for a fresh pool to have started."""

    def __init__(self, processes: int, warm: tuple[str, ...] = (), start_s: float = 120.0):
        self.processes, self.warm, self.start_s = processes, warm, start_s
        self._lock = threading.Lock()
        self._pool = self._ready = None

    def start(self):
        """The pool, started now if it is not running (without waiting for it)."""
        with self._lock:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(self.processes, _import, (self.warm,))
                self._ready = self._pool.apply_async(int)  # answered once a worker has started
            return self._pool, self._ready

    def ready(self):
        """The started pool, once a worker has imported its modules; ``WorkTimeout`` past ``start_s``."""
        pool, ready = self.start()
        try:
            ready.get(timeout=self.start_s)
        except multiprocessing.TimeoutError:
            self._end(pool)
            raise WorkTimeout(f"did not start in {self.start_s:g} s") from None
        return pool

    def run(self, fn: Callable, args: tuple, seconds: float) -> Any:
        """``fn(*args)`` in a worker; its exception is raised here; ``WorkTimeout`` past ``seconds``."""
        pool = self.ready()
        result = pool.apply_async(fn, args)
        try:
            return result.get(timeout=seconds)
        except multiprocessing.TimeoutError:
            self._end(pool)
            raise WorkTimeout(f"took longer than {seconds:g} s") from None

    def _end(self, pool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = self._ready = None
        pool.terminate()

    def close(self) -> None:
        with self._lock:
            pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            pool.terminate()


_pools: dict[str, WorkerPool] = {}
_pools_lock = threading.Lock()
WARM = {"parse": ("l2o.expr",), "render": ("services.api.registry", "matplotlib.figure", "l2o.optim.export"),
        "search": ("l2o.pipeline.distill", "l2o.distill.select")}


def pool(name: str, processes: int = 2) -> WorkerPool:
    """The pool of one kind of work (made at the first call, with ``processes`` workers)."""
    with _pools_lock:
        if name not in _pools:
            _pools[name] = WorkerPool(processes, WARM.get(name, ()))
        return _pools[name]


def bounded_parse(text: str, seconds: float):
    """``parse_equation(text)`` in a worker; ``EquationError`` when it fails or takes over ``seconds``."""
    try:
        return pool("parse").run(parse_equation, (text,), seconds)
    except WorkTimeout as err:
        raise EquationError(f"parsing {err}") from None


def close() -> None:
    with _pools_lock:
        pools = list(_pools.values())
    for p in pools:
        p.close()
