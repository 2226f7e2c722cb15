"""Device choice, out-of-memory recognition, and the CPU fallback of a job that runs out of GPU memory."""

from __future__ import annotations

import pytest
import torch

from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import DeviceChoice, cpu_fallback_notice, is_out_of_memory, pick_device
from desktop_ai.engine.models.loading import run_with_cpu_fallback

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
cpu_only_machine = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")


def _mps() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def test_cpu_is_cpu_with_a_reason() -> None:
    choice = pick_device("cpu")
    assert choice.device == "cpu"
    assert choice.dtype == torch.float32
    assert choice.reason
    assert not choice.is_gpu
    assert choice.describe() == "cpu, float32"


@cpu_only_machine
def test_auto_without_a_gpu_is_cpu_with_a_reason() -> None:
    if _mps():
        pytest.skip("an Apple GPU is available")
    for preference in ("auto", "", None, "AUTO"):
        choice = pick_device(preference)
        assert choice.device == "cpu"
        assert "no GPU" in choice.reason


@cpu_only_machine
@pytest.mark.parametrize("preference", ["cuda", "CUDA", "cuda:0", "cuda:1"])
def test_forced_cuda_without_cuda_falls_back_to_cpu_and_says_why(preference: str) -> None:
    choice = pick_device(preference)
    assert choice.device == "cpu"
    assert "CUDA" in choice.reason
    assert "CPU" in choice.reason


def test_forced_mps_without_mps_falls_back_to_cpu() -> None:
    if _mps():
        pytest.skip("an Apple GPU is available")
    choice = pick_device("mps")
    assert choice.device == "cpu"
    assert "MPS" in choice.reason


@pytest.mark.parametrize("preference", ["gpu", "tpu", "cudaa", "cpu0", "vulkan"])
def test_unknown_device_raises_value_error(preference: str) -> None:
    with pytest.raises(ValueError) as info:
        pick_device(preference)
    assert preference in str(info.value)
    assert "cuda" in str(info.value) and "cpu" in str(info.value)


def test_out_of_memory_is_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend Out Of Memory (MPS allocated: 8 GB)"))


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("shape mismatch"),
        RuntimeError("CUDA error: device-side assert triggered"),
        ValueError("out of memory"),  # not a RuntimeError: not torch's allocator
        MemoryError(),
        KeyError("memory"),
    ],
)
def test_other_errors_are_not_out_of_memory(error: BaseException) -> None:
    assert not is_out_of_memory(error)


def test_fallback_notice_names_the_device() -> None:
    notice = cpu_fallback_notice("cuda:0")
    assert "cuda:0" in notice and "CPU" in notice


def _causal_lm_entry(workspace, folder):
    from transformers import AutoModelForCausalLM

    return workspace.store.resolve_entry(str(folder), TASK_GENERATE), AutoModelForCausalLM


def test_cpu_job_out_of_memory_is_re_raised(workspace, tiny_causal_lm_dir) -> None:
    """On the CPU there is nowhere to fall back to: the error reaches the caller."""
    entry, auto_class = _causal_lm_entry(workspace, tiny_causal_lm_dir)
    calls: list[str] = []

    def job(loaded):
        calls.append(loaded.device)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(torch.OutOfMemoryError):
        run_with_cpu_fallback(
            workspace.store, entry, auto_class, DeviceChoice("cpu", torch.float32, "x"), Compression.NONE, job
        )
    assert calls == ["cpu"]  # tried once, not retried


def test_job_error_that_is_not_out_of_memory_is_not_retried(workspace, tiny_causal_lm_dir) -> None:
    entry, auto_class = _causal_lm_entry(workspace, tiny_causal_lm_dir)
    calls: list[str] = []

    def job(loaded):
        calls.append(loaded.device)
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_cpu_fallback(
            workspace.store, entry, auto_class, DeviceChoice("meta", torch.float32, "x"), Compression.NONE, job
        )
    assert calls == ["meta"]


def test_non_cpu_job_out_of_memory_reruns_on_the_cpu(workspace, tiny_causal_lm_dir) -> None:
    """The fallback logic without a GPU: the "meta" device stands in for one (the model really moves there),
    and the job, like a real one on a full GPU, raises torch's out-of-memory error there."""
    entry, auto_class = _causal_lm_entry(workspace, tiny_causal_lm_dir)
    calls: list[str] = []

    def job(loaded):
        calls.append(loaded.device)
        if loaded.device != "cpu":
            assert next(loaded.model.parameters()).device.type == "meta"
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        assert next(loaded.model.parameters()).device.type == "cpu"
        return "done on cpu"

    result, loaded, notices = run_with_cpu_fallback(
        workspace.store, entry, auto_class, DeviceChoice("meta", torch.float32, "test"), Compression.FP16, job
    )
    assert result == "done on cpu"
    assert calls == ["meta", "cpu"]
    assert loaded.device == "cpu"
    assert loaded.compression.method == "none"  # fp16 is not used on the CPU
    assert notices == [cpu_fallback_notice("meta")]
    # The model on the full device was dropped; only the CPU copy stays loaded.
    assert len(workspace.store.loaded) == 1
    assert workspace.store.loaded.loads == 2


@pytest.mark.gpu
@needs_cuda
def test_real_cuda_out_of_memory_falls_back_to_the_cpu(workspace, tiny_causal_lm_dir) -> None:
    entry, auto_class = _causal_lm_entry(workspace, tiny_causal_lm_dir)
    calls: list[str] = []

    def job(loaded):
        calls.append(loaded.device)
        if loaded.device.startswith("cuda"):
            torch.empty(2**44, dtype=torch.uint8, device=loaded.device)  # 16 TiB: a real CUDA OOM
        return loaded.device

    result, loaded, notices = run_with_cpu_fallback(
        workspace.store, entry, auto_class, pick_device("cuda"), Compression.FP16, job
    )
    assert calls == ["cuda", "cpu"]
    assert result == "cpu"
    assert notices == [cpu_fallback_notice("cuda")]


@pytest.mark.gpu
@needs_cuda
def test_text_generation_on_cuda_in_fp16(workspace, tiny_causal_lm_dir) -> None:
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    generator = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cuda", compression="fp16")
    assert generator.device.device == "cuda"
    result = generator.run("Tell me a story", GenerationOptions(max_new_tokens=8, temperature=0))
    assert result.device == "cuda"
    assert result.compression == "fp16"
    assert 1 <= result.new_tokens <= 8
    loaded = generator.load()
    assert next(loaded.model.parameters()).dtype == torch.float16
    assert loaded.compression.size_bytes < loaded.compression.size_bytes_before


def test_cpu_threads_follow_the_setting_a_cluster_worker_makes(monkeypatch) -> None:
    import os

    from desktop_ai.engine.models.devices import CPU_THREADS_ENV, cpu_threads

    monkeypatch.delenv(CPU_THREADS_ENV, raising=False)
    assert cpu_threads() == (os.cpu_count() or 1)
    monkeypatch.setenv(CPU_THREADS_ENV, "1")
    assert cpu_threads() == 1
    for wrong in ("0", "-2", "many", ""):
        monkeypatch.setenv(CPU_THREADS_ENV, wrong)
        assert cpu_threads() == (os.cpu_count() or 1), wrong
