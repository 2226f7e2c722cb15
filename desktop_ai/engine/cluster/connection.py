"""Reaching a Ray cluster: `local` starts one on this machine, anything else goes to ray.init as an address."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from desktop_ai.engine.errors import EngineError

logger = logging.getLogger(__name__)

LOCAL = "local"
INSTALL_HINT = 'pip install "desktop-ai[cluster]"'
LOCAL_OBJECT_STORE_BYTES = 200_000_000  # a local cluster's shared memory for batches in flight; Ray's floor is ~78 MB


class ClusterUnavailableError(EngineError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray() -> Any:
    """Ray, imported on first use; without it, say how to get it."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailableError(
            f"Cluster jobs need Ray, which is not installed here. Install it with: {INSTALL_HINT}"
        ) from None
    if ray is None:  # hidden on purpose (sys.modules["ray"] = None): the same as missing
        raise ClusterUnavailableError(f"Cluster jobs need Ray, which is not installed here. Install it with: {INSTALL_HINT}")
    return ray


@dataclass
class Cluster:
    """A connection this process made (and ends on close); `started_here` when `local` started the cluster."""

    address: str
    ray: Any
    started_here: bool
    cpus: float
    owned: bool = True  # False when this process was connected already (a test's driver): leave it connected

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ray.init retries an address where nothing listens for minutes; a head that is not there is said at once."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ClusterUnavailableError(f"{address} is not a cluster address: give host:port or ray://host:10001.") from None
    if not host or port is None:
        raise ClusterUnavailableError(f"{address} is not a cluster address: give host:port or ray://host:10001.")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as error:
        raise ClusterUnavailableError(f"Nothing answers at {address} ({error.strerror or error}): is the Ray "
                                      "cluster's head running there? Start one with `ray start --head`, or use local.") from None


def connect(address: str, workers: int = 1, quiet: bool = True) -> Cluster:
    """`local`: a cluster on this machine with one CPU per worker; otherwise any address ray.init accepts
    (`auto`, `host:6379`, `ray://host:10001`). A process already connected keeps its connection."""
    ray = import_ray()
    address = address.strip()
    if not address:
        raise ClusterUnavailableError("Give a cluster address: local, auto, host:port or ray://host:10001.")
    if ray.is_initialized():
        return Cluster(address, ray, False, float(ray.cluster_resources().get("CPU", 0)), owned=False)
    if quiet:  # Ray's own notices on stderr are for --verbose, like torch's
        logging.getLogger("ray").setLevel(logging.ERROR)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == LOCAL:
            ray.init(num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False, **options)
        else:
            _check_reachable(address)
            ray.init(address=address, **options)
    except ClusterUnavailableError:
        raise
    except Exception as error:  # ConnectionError, a timeout, a bad address: all the user can act on
        raise ClusterUnavailableError(f"Cannot reach the Ray cluster at {address}: {error}") from error
    cpus = float(ray.cluster_resources().get("CPU", 0))
    logger.info("Connected to the Ray cluster at %s (%g CPUs)", address, cpus)
    return Cluster(address, ray, address == LOCAL, cpus)
