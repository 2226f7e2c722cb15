"""Device and precision choice, and the CPU fallback when a GPU runs out of memory.

Users of other local-AI apps most often report a GPU silently unused; here the choice is explicit
and every fallback carries a reason that the window and the CLI show.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICE_PREFERENCES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    dtype: torch.dtype
    reason: str

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    def describe(self) -> str:
        import torch

        name = self.device
        if self.device.startswith("cuda") and torch.cuda.is_available():
            name = f"{self.device} ({torch.cuda.get_device_name(torch.device(self.device))})"
        return f"{name}, {str(self.dtype).removeprefix('torch.')}"


CPU_THREADS_ENV = "DESKTOP_AI_CPU_THREADS"


def cpu_threads() -> int:
    """The CPU threads one model may use: every core, unless DESKTOP_AI_CPU_THREADS says fewer. A cluster worker
    sets it to the CPUs Ray gave it, so that workers sharing a machine do not fight over its cores."""
    value = os.environ.get(CPU_THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def pick_device(preference: str = "auto") -> DeviceChoice:
    """Auto prefers CUDA, then Apple MPS, then the CPU; a forced device that is missing falls back with a reason."""
    import torch

    preference = (preference or "auto").lower()
    if preference not in DEVICE_PREFERENCES and not preference.startswith("cuda:"):
        raise ValueError(f"Unknown device {preference!r}: choose one of {', '.join(DEVICE_PREFERENCES)}.")
    if preference.startswith("cuda"):
        if torch.cuda.is_available():
            return DeviceChoice(preference, torch.float32, "CUDA chosen in settings")
        return DeviceChoice("cpu", torch.float32, "CUDA was chosen but no CUDA GPU is available; using the CPU")
    if preference == "mps":
        if _mps_available():
            return DeviceChoice("mps", torch.float32, "Apple GPU chosen in settings")
        return DeviceChoice("cpu", torch.float32, "Apple GPU (MPS) was chosen but is not available; using the CPU")
    if preference == "cpu":
        return DeviceChoice("cpu", torch.float32, "CPU chosen in settings")
    if torch.cuda.is_available():
        return DeviceChoice("cuda", torch.float32, "CUDA GPU found")
    if _mps_available():
        return DeviceChoice("mps", torch.float32, "Apple GPU found")
    return DeviceChoice("cpu", torch.float32, "no GPU found; using the CPU")


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cpu_fallback_notice(device: str) -> str:
    return f"The GPU ({device}) ran out of memory; this job ran on the CPU instead."
