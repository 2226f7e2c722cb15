"""A real Ray cluster on 127.0.0.1 for the cluster tests: a head and two worker nodes, each a `ray start --block`
process in its own process group, so the fixture stops exactly what it started (never `ray stop`, which would
end every Ray process of this user). Small: one CPU per node and 100 MB of object store each."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Token authentication, as Ray sets up by default, with a token of our own that every node and driver (this process,
# the CLI's subprocesses) is given. Set when this module is imported, before ray is: ray reads them at import.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
OBJECT_STORE = "100000000"
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayCluster:
    address: str
    temp_dir: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start_node(self, *args: str, log: str) -> subprocess.Popen:
        handle = open(self.temp_dir.parent / f"{log}.log", "wb")
        proc = subprocess.Popen([str(RAY), "start", "--block", "--num-cpus=1", f"--object-store-memory={OBJECT_STORE}",
                                 "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                                stdout=handle, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        """SIGTERM to each process group we started (workers first), SIGKILL what is left after a few seconds."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=max(0.5, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # a head still draining, and any worker process left behind
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)


def start_cluster(root: Path, workers: int = 2) -> RayCluster:
    """Blocks until the head and every worker node are alive (bounded by START_TIMEOUT_S)."""
    import ray

    port = free_port()
    temp_dir = root / "ray"
    temp_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DESKTOP_AI_HOME": str(root / "worker-home"), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_raylet_start_wait_time_s": "120"}
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, env)
    try:
        cluster.start_node("--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false", log="head")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # the GCS must answer before a worker node can join
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or cluster.processes[0].poll() is not None:
                    raise RuntimeError("the Ray head did not start: " + _log(root, "head"))
                time.sleep(0.5)
        ray.init(address=cluster.address, log_to_driver=False)
        for number in range(workers):  # one at a time: on two busy cores, raylets started together time out
            cluster.start_node(f"--address={cluster.address}", log=f"worker{number}")
            while len([n for n in ray.nodes() if n["Alive"]]) < number + 2:
                if time.monotonic() > deadline or cluster.processes[-1].poll() is not None:
                    raise RuntimeError(f"Ray worker node {number} did not join: " + _log(root, f"worker{number}"))
                time.sleep(0.5)
        return cluster
    except BaseException:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
        raise


def _log(root: Path, name: str) -> str:
    path = root / f"{name}.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"
