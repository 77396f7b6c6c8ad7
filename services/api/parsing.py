"""Parsing client text under a time limit, in a separate worker process.

The whitelist parser already bounds its work by the length of the text (``l2o.expr.parse``); the time
limit is the second line: a parse that runs past it is stopped by ending the worker, which is then
replaced. The service's own threads never run client text through sympy.
"""

from __future__ import annotations

import multiprocessing
import threading

from l2o.expr import EquationError, parse_equation

_lock = threading.Lock()
_pool = None


def _get_pool():
    global _pool
    with _lock:
        if _pool is None:
            _pool = multiprocessing.get_context("spawn").Pool(processes=2)
        return _pool


def bounded_parse(text: str, seconds: float):
    """``parse_equation(text)`` in a worker; ``EquationError`` when it fails or takes over ``seconds``."""
    global _pool
    pool = _get_pool()
    result = pool.apply_async(parse_equation, (text,))
    try:
        return result.get(timeout=seconds)
    except multiprocessing.TimeoutError:
        with _lock:
            if _pool is pool:
                _pool = None
        pool.terminate()
        raise EquationError(f"parsing took longer than {seconds:g} s") from None


def close() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.terminate()
