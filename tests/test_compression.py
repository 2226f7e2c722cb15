"""Compression on real modules: int8 (torch.ao on the CPU), pruning, fp16 refusal on the CPU, and the reports."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from desktop_ai.engine.models.compression import (
    DEFAULT_PRUNE_AMOUNT,
    Compression,
    compress,
    count_parameters,
    linear_sparsity,
    model_size_bytes,
)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0))


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64)).eval()


@pytest.fixture
def tiny_llama(tiny_causal_lm_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir, dtype=torch.float32).eval()


def _llama_ids() -> torch.Tensor:
    return torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11]])


def test_model_size_counts_fp32_bytes_and_tied_weights_once(mlp: nn.Sequential, tiny_llama) -> None:
    params = sum(p.numel() for p in mlp.parameters())
    assert model_size_bytes(mlp) == 4 * params
    assert count_parameters(mlp) == params
    # Tied lm_head shares the embedding: parameters() lists it once, and so must the size.
    assert tiny_llama.lm_head.weight is tiny_llama.model.embed_tokens.weight
    unique = sum(p.numel() for p in tiny_llama.parameters())
    assert count_parameters(tiny_llama) == unique
    assert model_size_bytes(tiny_llama) == 4 * unique


def test_int8_shrinks_a_linear_model_and_keeps_outputs_close(mlp: nn.Sequential) -> None:
    x = torch.randn(16, 128)
    with torch.no_grad():
        expected = mlp(x)
    before = model_size_bytes(mlp)
    model, report = compress(copy.deepcopy(mlp), "int8", "cpu")
    assert report.method == "int8"
    assert report.backend == "torch.ao"
    assert report.size_bytes_before == before
    assert report.size_bytes == model_size_bytes(model)
    assert report.size_bytes < 0.4 * report.size_bytes_before
    assert report.size_bytes <= report.size_bytes_before
    assert abs(report.parameters - count_parameters(mlp)) < 0.01 * count_parameters(mlp)
    assert report.sparsity == 0.0
    assert report.notice is None
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # every Linear was swapped
    with torch.no_grad():
        got = model(x)
    assert got.shape == expected.shape
    assert _cosine(got, expected) > 0.95


def test_int8_on_the_tiny_llama(tiny_llama) -> None:
    ids = _llama_ids()
    with torch.no_grad():
        expected = tiny_llama(ids).logits
    model, report = compress(copy.deepcopy(tiny_llama), Compression.INT8, "cpu")
    assert report.method == "int8"
    assert report.size_bytes < report.size_bytes_before
    with torch.no_grad():
        got = model(ids).logits
    assert _cosine(got, expected) > 0.95
    assert json.loads(json.dumps(report.to_dict()))["method"] == "int8"
    assert "int8" in report.describe()


def test_int8_with_torch_ao_on_a_gpu_device_is_refused(mlp: nn.Sequential) -> None:
    with pytest.raises(ValueError, match="CPU only"):
        compress(mlp, "int8", "cuda", backend="torch.ao")


def test_prune_reaches_the_amount_and_is_permanent(mlp: nn.Sequential) -> None:
    x = torch.randn(4, 128)
    model, report = compress(mlp, "prune", "cpu", prune_amount=0.3)
    assert report.method == "prune"
    assert report.backend == "torch.nn.utils.prune"
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        zeros = float((layer.weight == 0).float().mean())
        assert zeros == pytest.approx(0.3, abs=0.01)
        assert not hasattr(layer, "weight_orig")
        assert not hasattr(layer, "weight_mask")
        assert len(layer._forward_pre_hooks) == 0
        assert isinstance(layer.weight, nn.Parameter)
        assert "weight" in dict(layer.named_parameters())
    assert report.sparsity == pytest.approx(0.3, abs=0.01)
    assert report.sparsity == pytest.approx(linear_sparsity(model))
    # Pruning zeroes weights in place: the dense size does not change.
    assert report.size_bytes == report.size_bytes_before
    # The model still runs and its state_dict has only the plain names (it saves and reloads normally).
    assert model(x).shape == (4, 64)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())


def test_prune_default_amount(mlp: nn.Sequential) -> None:
    _, report = compress(mlp, "prune", "cpu")
    assert report.sparsity == pytest.approx(DEFAULT_PRUNE_AMOUNT, abs=0.01)
    assert f"{DEFAULT_PRUNE_AMOUNT:.0%} zero weights" in report.describe()


def test_prune_leaves_the_tied_lm_head_and_embedding_alone(tiny_llama) -> None:
    embedding_before = tiny_llama.model.embed_tokens.weight.detach().clone()
    model, report = compress(tiny_llama, "prune", "cpu")
    embedding = model.model.embed_tokens.weight
    # Only the padding row is zero (transformers initialises it so); pruning added no zeros.
    pad = model.config.pad_token_id
    assert int((embedding_before == 0).sum()) == (embedding.shape[1] if pad is not None else 0)
    assert torch.equal(embedding.detach(), embedding_before)
    assert model.lm_head.weight is embedding  # still tied
    for name, layer in model.named_modules():
        if isinstance(layer, nn.Linear) and name != "lm_head":
            assert float((layer.weight == 0).float().mean()) == pytest.approx(DEFAULT_PRUNE_AMOUNT, abs=0.01), name
            assert len(layer._forward_pre_hooks) == 0
            assert not hasattr(layer, "weight_orig")
    # The untouched lm_head is counted, so the overall sparsity is below the per-layer amount.
    assert 0 < report.sparsity < DEFAULT_PRUNE_AMOUNT
    with torch.no_grad():
        assert model(_llama_ids()).logits.shape[-1] == model.config.vocab_size


def test_fp16_on_cpu_is_refused_with_a_notice(mlp: nn.Sequential) -> None:
    model, report = compress(mlp, "fp16", "cpu")
    assert report.method == "none"
    assert report.notice and "GPU" in report.notice
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert report.size_bytes == report.size_bytes_before


def test_none_leaves_the_model_as_it_is(mlp: nn.Sequential) -> None:
    x = torch.randn(2, 128)
    with torch.no_grad():
        expected = mlp(x)
    model, report = compress(mlp, Compression.NONE, "cpu")
    assert report.method == "none"
    assert report.size_bytes == report.size_bytes_before == model_size_bytes(mlp)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(x), expected)


@pytest.mark.parametrize("value", ["int8", "fp16", "prune", "none", Compression.INT8])
def test_parse_accepts_known_values(value) -> None:
    assert Compression.parse(value).value == str(getattr(value, "value", value))


def test_parse_rejects_int4_with_a_clear_message() -> None:
    with pytest.raises(ValueError) as info:
        Compression.parse("int4")
    message = str(info.value)
    assert "int4" in message
    for choice in ("none", "int8", "fp16", "prune"):
        assert choice in message


def test_compress_rejects_unknown_method(mlp: nn.Sequential) -> None:
    with pytest.raises(ValueError, match="int4"):
        compress(mlp, "int4", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_fp16_and_int8_on_a_gpu(mlp: nn.Sequential) -> None:
    x = torch.randn(8, 128, device="cuda")
    mlp = mlp.to("cuda")
    with torch.no_grad():
        expected = mlp(x)
    half, report = compress(copy.deepcopy(mlp), "fp16", "cuda")
    assert report.method == "fp16"
    assert report.size_bytes == report.size_bytes_before // 2
    with torch.no_grad():
        assert _cosine(half(x.half()), expected) > 0.99
    quantized, report = compress(copy.deepcopy(mlp), "int8", "cuda")
    assert report.backend == "torchao"
    with torch.no_grad():
        assert _cosine(quantized(x), expected) > 0.95
