"""More Piper voices from their Hub repository (rhasspy/piper-voices), through the same resumable, hash-checked
downloads as every model (tests/hub_server.py stands in for the Hub): listed as downloadable, downloaded into the
Hugging Face cache, then found, named in the language refusal, and spoken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from desktop_ai.engine.audio.synthesis.voices import embedded_voice, find_voice, installed_voices
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.catalogue import PIPER_VOICES_REPO, find_entry, piper_voice_files

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")]
VOICE = "de_DE-thorsten-medium"
GERMAN = "Der Zug nach Berlin fährt heute wegen des Wetters etwas später ab."


@pytest.fixture
def voices_repo(tmp_path: Path) -> Path:
    """A piper-voices tree with one German voice: the embedded model's weights under a German config (what is
    checked here is the download path, the files' layout and their use, not Thorsten's own voice)."""
    joe = embedded_voice()
    onnx, config = piper_voice_files(VOICE)
    root = tmp_path / "piper-voices"
    (root / onnx).parent.mkdir(parents=True)
    shutil.copy(joe.model_path, root / onnx)
    data = json.loads(joe.config_path.read_text())
    data["espeak"]["voice"] = "de"
    data["language"] = {"code": "de_DE", "family": "de", "region": "DE", "name_english": "German"}
    (root / config).write_text(json.dumps(data))
    (root / "de" / "de_DE" / "thorsten" / "medium" / "MODEL_CARD").write_text("# thorsten\n")
    (root / "en" / "en_GB" / "alan" / "medium").mkdir(parents=True)
    (root / "en" / "en_GB" / "alan" / "medium" / "en_GB-alan-medium.onnx.json").write_text("{}")  # another voice
    return root


def test_voice_entries_point_into_the_hub_repository():
    entry = find_entry(VOICE)
    assert entry is not None and entry.task == "speak" and entry.kind == "piper-voice"
    assert entry.location == PIPER_VOICES_REPO and entry.revision == "v1.0.0"
    assert entry.files == ("de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx",
                           "de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx.json")


def test_a_voice_downloads_and_then_speaks(hub_server, voices_repo, workspace):
    from desktop_ai.engine.audio.synthesis.synthesizer import SpeechSynthesizer
    from desktop_ai.engine.models.inventory import Inventory

    hub_server.add_folder(PIPER_VOICES_REPO, voices_repo)
    with pytest.raises(ModelUnavailableError, match="not downloaded yet.*Models window"):
        find_voice(VOICE)
    inventory = Inventory(workspace.store)
    row = next(r for r in inventory.rows("speak") if r.id == VOICE)
    assert row.state == "not downloaded" and row.download_mb > 60
    events = []
    result = inventory.download(VOICE, events.append)
    assert events and events[-1].done_bytes == events[-1].total_bytes
    assert sorted(result.path.rglob("*.onnx*")) == sorted(result.path / f for f in piper_voice_files(VOICE))
    assert not any("alan" in request for request in hub_server.requests if "/resolve/" in request)  # only its files
    assert next(r for r in inventory.rows("speak") if r.id == VOICE).state == "downloaded"

    voice = find_voice(VOICE)
    assert voice.source == "downloaded" and voice.config.language == "de_DE"
    assert [v.id for v in installed_voices()] == ["en_US-joe-medium", VOICE]
    with pytest.raises(InvalidInputError, match=f"Voices that speak it: {VOICE}"):
        SpeechSynthesizer().synthesize(GERMAN)
    german = SpeechSynthesizer(VOICE, workspace.store).synthesize(GERMAN)
    assert german.voice == VOICE and german.duration_s > 2


def test_removing_one_voice_keeps_the_others_of_its_repository(hub_server, voices_repo, workspace):
    """Every Hub voice lives in rhasspy/piper-voices: removing one must not delete the repository's other voices."""
    from desktop_ai.engine.models.downloads import repo_folder
    from desktop_ai.engine.models.inventory import Inventory

    french = "fr_FR-siwis-medium"
    onnx, config = piper_voice_files(french)
    (voices_repo / onnx).parent.mkdir(parents=True)
    shutil.copy(voices_repo / piper_voice_files(VOICE)[0], voices_repo / onnx)  # the same bytes: one shared blob
    data = json.loads((voices_repo / piper_voice_files(VOICE)[1]).read_text())
    data["espeak"]["voice"] = "fr"
    data["language"] = {"code": "fr_FR", "family": "fr", "region": "FR", "name_english": "French"}
    (voices_repo / config).write_text(json.dumps(data))
    hub_server.add_folder(PIPER_VOICES_REPO, voices_repo)
    inventory = Inventory(workspace.store)
    inventory.download(VOICE)
    inventory.download(french)
    states = lambda: {r.id: r.state for r in inventory.rows("speak")}  # noqa: E731
    assert states()[VOICE] == states()[french] == "downloaded"

    message, freed = inventory.remove(VOICE)
    assert "Removed" in message and 0 < freed < 1e6, "only the German config: its weights' blob is the French voice's too"
    assert states()[VOICE] == "not downloaded" and states()[french] == "downloaded"
    assert find_voice(french).config.language == "fr_FR"
    with pytest.raises(ModelUnavailableError, match="not downloaded yet"):
        find_voice(VOICE)
    assert not any(repo_folder(PIPER_VOICES_REPO).rglob("de_DE*")), "the German voice's files and folders are gone"

    _message, freed = inventory.remove(french)
    assert freed > 60e6, "the last voice using the shared weights frees them"
    assert states()[french] == "not downloaded"
    assert not [p for p in (repo_folder(PIPER_VOICES_REPO) / "blobs").iterdir() if p.stat().st_size > 1e6]
