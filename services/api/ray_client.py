"""Ray's Jobs API client with a timeout on every call.

``JobSubmissionClient`` sends its requests (the version check, submission, status, logs, stop, the upload
of the working directory) with no timeout, so a dashboard that accepts a connection and never answers
holds a worker thread forever. This client passes ``timeout`` to each of them (connect and read, in
seconds), and a failure of any kind becomes ``RayUnavailable``.
"""

from __future__ import annotations

from ray.job_submission import JobSubmissionClient


class RayUnavailable(RuntimeError):
    """Ray did not answer (in time, or at all), or refused the call."""


class TimedJobClient(JobSubmissionClient):
    def __init__(self, address: str, timeout: float):
        self._timeout = (min(timeout, 5.0), timeout)  # (connect, read)
        try:
            super().__init__(address)
        except Exception as err:  # requests' timeouts and connection errors, Ray's ConnectionError
            raise RayUnavailable(f"Ray at {address} is unreachable: {type(err).__name__}: {err}") from err

    def _do_request(self, method, endpoint, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        return super()._do_request(method, endpoint, **kwargs)


def call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on a client, its failures as ``RayUnavailable``."""
    try:
        return fn(*args, **kwargs)
    except RayUnavailable:
        raise
    except Exception as err:  # the Jobs API answers errors, unknown ids and lost clusters with varied types
        raise RayUnavailable(f"{type(err).__name__}: {err}"[:2000]) from err
