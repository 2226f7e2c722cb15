"""Models added from disk and folders listed in place (real SQLite, real files), the inventory's states and
Remove, and the `models` CLI (list, download from the local Hub, remove, add)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from desktop_ai.cli import main as cli
from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.catalogue import TASK_GENERATE, TASK_RECOGNIZE, find_entry
from desktop_ai.engine.models.inventory import STATE_DOWNLOADED, STATE_EMBEDDED, STATE_NOT_DOWNLOADED, Inventory
from desktop_ai.engine.models.library import ModelLibrary, expand_model_ref, scan_folder
from desktop_ai.engine.models.store import ModelStore

pytestmark = pytest.mark.timeout(180)


def fake_gguf(path: Path, size: int = 4096) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + b"\0" * (size - 4))
    return path


def fake_torchscript(path: Path, labels: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", b"x")
        archive.writestr("model/constants.pkl", b"x")
    if labels:
        path.with_name("labels.txt").write_text("\n".join(labels))
    return path


def test_a_gguf_file_is_checked_added_and_found_by_its_id(tmp_path: Path) -> None:
    library = ModelLibrary()
    model = library.add(fake_gguf(tmp_path / "Phi-Mini.Q4_K_M.gguf"))
    assert model.id == "my-phi-mini.q4-k-m"
    assert model.task == TASK_GENERATE
    assert ModelLibrary().find(model.id) == model  # persisted in SQLite
    assert expand_model_ref(model.id) == str(tmp_path / "Phi-Mini.Q4_K_M.gguf")
    assert expand_model_ref("distilgpt2") == "distilgpt2"
    assert library.add(tmp_path / "Phi-Mini.Q4_K_M.gguf") == model  # the same file twice is one model


def test_bad_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    library = ModelLibrary()
    (tmp_path / "fake.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailableError, match="not a GGUF file"):
        library.add(tmp_path / "fake.gguf")
    with pytest.raises(ModelUnavailableError, match="only generate"):
        library.add(fake_gguf(tmp_path / "ok.gguf"), task="translate")
    with pytest.raises(ModelUnavailableError, match="labels"):
        library.add(fake_torchscript(tmp_path / "net.pt"))
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        (tmp_path / "empty").mkdir()
        library.add(tmp_path / "empty")
    assert library.added() == []


def test_an_image_model_with_labels_is_added_for_recognition(tmp_path: Path) -> None:
    model = ModelLibrary().add(fake_torchscript(tmp_path / "birds.pt", ["robin", "wren"]))
    assert model.task == TASK_RECOGNIZE
    assert model.labels == str(tmp_path / "labels.txt")


def test_a_transformers_folder_gets_its_task_from_its_config(tiny_causal_lm_dir: Path) -> None:
    model = ModelLibrary().add(tiny_causal_lm_dir)
    assert (model.task, model.kind) == ("generate", "causal-lm")


def test_a_folder_is_listed_in_place_and_rescanned(tmp_path: Path, tiny_causal_lm_dir: Path) -> None:
    lm_studio = tmp_path / "lmstudio" / "models"
    fake_gguf(lm_studio / "TheBloke" / "tiny-GGUF" / "tiny.Q4_0.gguf")
    ollama = tmp_path / "lmstudio" / "models" / "ollama"
    blob = fake_gguf(ollama / "blobs" / ("sha256-" + "ab" * 32))
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "llama3" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32}]}))
    library = ModelLibrary()
    found = library.add_folder(tmp_path / "lmstudio")
    paths = {m.path for m in found}
    assert str(lm_studio / "TheBloke" / "tiny-GGUF" / "tiny.Q4_0.gguf") in paths
    assert str(blob) in paths  # Ollama's blob, by its manifest
    shutil.copytree(tiny_causal_lm_dir, lm_studio / "my-llama")
    assert any(m.path == str(lm_studio / "my-llama") for m in library.all_models())  # a new folder appears
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "lmstudio").rglob("*") if p.is_file()}
    library.forget(found[0].id)
    assert library.all_models() == []
    assert all(p.exists() for p in before), "forgetting never deletes the user's files"


def test_an_ollama_blob_resolves_as_a_gguf_model(tmp_path: Path) -> None:
    blob = fake_gguf(tmp_path / "blobs" / ("sha256-" + "cd" * 32))
    entry = ModelStore(tmp_path / "converted").resolve_entry(str(blob), TASK_GENERATE)
    assert entry.gguf_file == blob.name


def test_inventory_states_and_remove(hub_server, tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    hub_server.add_folder("distilbert/distilgpt2", tiny_causal_lm_dir)
    inventory = Inventory(ModelStore(tmp_path / "converted"), vram_bytes=None)
    rows = {r.id: r for r in inventory.rows()}
    assert rows["smollm2-135m-instruct-q4"].state == STATE_EMBEDDED
    assert rows["distilgpt2"].state == STATE_NOT_DOWNLOADED
    assert "models download distilgpt2" in rows["distilgpt2"].how_to_get
    assert rows["distilgpt2"].download_mb > 0 and "RAM" in rows["distilgpt2"].fits
    inventory.download("distilgpt2")
    row = inventory.row(find_entry("distilgpt2"))
    assert row.state == STATE_DOWNLOADED and row.size_on_disk_mb > 0 and row.removable
    message, freed = inventory.remove("distilgpt2")
    assert freed >= sum(p.stat().st_size for p in tiny_causal_lm_dir.iterdir() if p.is_file() and p.name != "chat_template.jinja") * 0.5
    assert "MB freed" in message
    assert inventory.row(find_entry("distilgpt2")).state == STATE_NOT_DOWNLOADED
    with pytest.raises(ModelUnavailableError, match="embedded"):
        inventory.remove("smollm2-135m-instruct-q4")


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_models_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "list", "--json", "--task", "generate"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # one JSON object a line
    assert len(rows) > 1 and all(isinstance(r, dict) for r in rows)
    assert {r["task"] for r in rows} == {"generate"}
    assert {"state", "where", "memory_mb", "fits", "download_mb", "licence"} <= set(rows[0])


def test_cli_models_alone_still_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "--json"]) == 0
    assert any(json.loads(line)["id"] == "distilgpt2" for line in capsys.readouterr().out.splitlines())


def test_cli_add_prints_an_id_usable_as_model(tmp_path: Path, tiny_causal_lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "add", str(tiny_causal_lm_dir), "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["task"] == "generate"
    code = cli.main(["generate", "hi", "--model", added["id"], "--max-new-tokens", "3", "--temperature", "0", "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["new_tokens"] >= 1
    assert cli.main(["models", "remove", added["id"]]) == 0
    assert "Forgot" in capsys.readouterr().out
    assert tiny_causal_lm_dir.exists()


def test_cli_add_folder_json_is_one_object_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = fake_gguf(tmp_path / "ggufs" / "a" / "one.Q4_0.gguf")
    second = fake_gguf(tmp_path / "ggufs" / "b" / "two.Q4_0.gguf")
    assert cli.main(["models", "add", str(tmp_path / "ggufs"), "--folder", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(isinstance(row, dict) for row in rows)
    assert {row["path"] for row in rows} == {str(first), str(second)}


def test_cli_add_a_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["models", "add", str(tmp_path / "notes.txt")]) == 2
    assert "is not a model" in capsys.readouterr().err


def test_cli_download_and_remove(hub_server, tiny_causal_lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub_server.add_folder("distilbert/distilgpt2", tiny_causal_lm_dir)
    assert cli.main(["models", "download", "distilgpt2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert Path(result["path"], "config.json").is_file()
    assert cli.main(["models", "remove", "distilgpt2", "--json"]) == 0
    removed = json.loads(capsys.readouterr().out)
    assert removed["freed_bytes"] > 0
    assert not Path(result["path"]).exists()
    assert cli.main(["models", "remove", "smollm2-135m-instruct-q4"]) == 2
    assert "embedded" in capsys.readouterr().err
