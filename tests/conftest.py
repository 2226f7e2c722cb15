"""Shared fixtures: an isolated user home for every test, no network, and tiny models built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# huggingface_hub reads HF_HUB_OFFLINE when it is first imported, so set it before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

import tiny_models  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """User data (settings, result cache, converted models) goes to a fresh folder, never the real one."""
    home = tmp_path_factory.mktemp("desktop-ai-home")
    monkeypatch.setenv("DESKTOP_AI_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:  # imported already (by a plugin, say): make sure it is offline too
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return home


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_long_causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with room for a 4000-token answer: on one CTranslate2 thread it writes about 9000 tokens a
    second, so a 200-token answer ends before an Esc sent from its first streamed token reaches the engine."""
    return tiny_models.build_causal_lm(tmp_path_factory.mktemp("tiny-llama-long"), max_positions=4608)


@pytest.fixture(scope="session")
def tiny_sequence_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_sequence_classifier(tmp_path_factory.mktemp("tiny-bert-sst"))


@pytest.fixture(scope="session")
def tiny_embedding_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_embedding_model(tmp_path_factory.mktemp("tiny-bert-embed"))


@pytest.fixture
def llama_cpp_installed() -> None:
    """Skips a llama.cpp test where llama-cpp-python did not build; fails it in CI (tests/llama_cpp_gate.py)."""
    from llama_cpp_gate import require_llama_cpp

    require_llama_cpp()


@pytest.fixture
def workspace(_isolated_home: Path):
    from desktop_ai.engine.workspace import open_workspace

    ws = open_workspace()
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from desktop_ai.bench.marian_stand_in import TINY, build_marian

    return build_marian(tmp_path_factory.mktemp("tiny-marian") / "model", TINY)


@pytest.fixture
def virtual_microphone(tmp_path: Path):
    """A private PulseAudio server whose null sink's monitor is the default input (starts in ~0.1 s)."""
    from virtual_microphone import start_virtual_microphone

    with start_virtual_microphone(tmp_path) as mic:
        yield mic


@pytest.fixture(scope="session")
def tiny_wav2vec2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_wav2vec2(tmp_path_factory.mktemp("tiny-wav2vec2"))


@pytest.fixture
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local Hub on 127.0.0.1 with HF_ENDPOINT pointed at it, online, and an empty Hugging Face cache."""
    from huggingface_hub import constants
    from hub_server import HubServer

    server = HubServer().start()
    hub = tmp_path / "hf-hub-cache"
    hub.mkdir()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    try:
        yield server
    finally:
        server.stop()
