"""all-MiniLM-L6-v2 on ONNX Runtime for indexing on the CPU: exported once from the loaded PyTorch model into
the converted-models cache (named by the model's revision, written atomically), checked against PyTorch on a few
sentences, and run with every CPU thread. On this project's 2-core machine the fused export is 1.05-1.12x a plain
PyTorch 2.14 encode in fp32 (an earlier torch gave ~2x; docs/benchmarks.md). Vectors are the same to about 1e-6,
so an index built either way stays one index."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.models.devices import cpu_threads
from desktop_ai.engine.models.loading import LoadedModel

logger = logging.getLogger(__name__)

CHECK_SENTENCES = ("The coolant pump circulates glycol.", "Prune the roses in February.", "A gale tore the sail.")
MAX_DIFFERENCE = 1e-3


class _HiddenStates:
    """What is exported: token ids and mask in, the last hidden states out (pooling stays in numpy)."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return Wrapped()


def onnx_path(converted_dir: Path, model_id: str, revision: str | None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model_id}-{revision or 'local'}")
    return converted_dir / "embeddings-onnx" / f"{slug}-fused.onnx"


def export(loaded: LoadedModel, path: Path) -> Path:
    """Exported with eager attention (the pattern ONNX Runtime's transformer optimizer recognises), then fused:
    one Attention, SkipLayerNormalization and BiasGelu op per layer. 15 to 25 % faster than the plain export on
    this project's machine, the same vectors (docs/benchmarks.md)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = loaded.tokenizer(["hello world", "a second, longer sentence"], padding=True, return_tensors="pt")
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")  # two cluster workers may export at once
    import warnings

    model = loaded.model
    previous = getattr(model.config, "_attn_implementation", None)
    switch = hasattr(model, "set_attn_implementation") and previous not in (None, "eager")
    if switch:
        model.set_attn_implementation("eager")
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on transformers' code are not the user's business
            torch.onnx.export(
                _HiddenStates(model).eval(), (sample["input_ids"], sample["attention_mask"]), str(partial),
                input_names=["input_ids", "attention_mask"], output_names=["hidden"], opset_version=17, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "hidden": {0: "batch", 1: "tokens"}},
            )
    finally:
        if switch:
            model.set_attn_implementation(previous)
    _fuse(partial, model.config)
    partial.replace(path)
    return path


def _fuse(path: Path, config: Any) -> None:
    """ONNX Runtime's BERT fusions, in place; a model of another architecture, or a failure, stays unfused."""
    if getattr(config, "model_type", "") != "bert":
        return
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
        fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
        optimized.save_model_to_file(str(path))
        logger.info("ONNX export fused: %s", fused)
    except Exception as error:  # the plain export still runs, only slower
        logger.warning("The ONNX export is left unfused (%s)", error)


class OnnxEmbeddingModel:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def hidden(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": input_ids.astype(np.int64),
                                       "attention_mask": attention_mask.astype(np.int64)})[0]


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    vectors = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def load_onnx(loaded: LoadedModel, converted_dir: Path) -> OnnxEmbeddingModel:
    """The cached export (made now if missing), refused if it disagrees with PyTorch."""
    import torch

    path = onnx_path(converted_dir, loaded.model_id, loaded.location.revision)
    if not path.exists():
        logger.info("Exporting %s to ONNX at %s", loaded.model_id, path)
        export(loaded, path)
    try:
        model = OnnxEmbeddingModel(path)
    except Exception:
        logger.warning("The ONNX file %s cannot be opened; exporting it again", path)
        model = OnnxEmbeddingModel(export(loaded, path))
    batch = loaded.tokenizer(list(CHECK_SENTENCES), padding=True, return_tensors="np")
    mask = batch["attention_mask"]
    ours = mean_pooled(model.hidden(batch["input_ids"], mask), mask)
    with torch.inference_mode():
        hidden = loaded.model(input_ids=torch.from_numpy(batch["input_ids"]).to(loaded.device),
                              attention_mask=torch.from_numpy(mask).to(loaded.device)).last_hidden_state
    reference = mean_pooled(hidden.float().cpu().numpy(), mask)
    worst = float(np.abs(ours - reference).max())
    if worst > MAX_DIFFERENCE:
        raise RuntimeError(f"the ONNX export disagrees with PyTorch (vectors differ by {worst:.5f})")
    return model
