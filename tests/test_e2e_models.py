"""End to end on the real embedded models (installed from PyPI with the app): real outputs, real window."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_ai.engine.models.catalogue import CATALOGUE  # noqa: E402
from desktop_ai.engine.models.store import ModelStore  # noqa: E402
from llama_cpp_gate import require_llama_cpp  # noqa: E402

pytestmark = pytest.mark.e2e

# The packages `make install` installs (requirements/models.txt); optional ones such as EfficientNet-Lite2 are
# listed in the catalogue as packages too, but a user installs them by choice.
INSTALLED_WITH_THE_APP = [line for line in (Path(__file__).resolve().parents[1] / "requirements" / "models.txt").read_text().splitlines()
                          if line and not line.startswith(("#", "-", " "))]
EMBEDDED = [e for e in CATALOGUE if e.is_embedded and any(line.startswith(f"{e.pip_name}==") for line in INSTALLED_WITH_THE_APP)]
COMMON_WORDS = {"the", "a", "an", "is", "and", "of", "to", "in", "it", "with", "that", "are", "its", "on"}


def _require_embedded() -> None:
    store = ModelStore(Path("/nonexistent"))
    missing = [e.pip_name for e in EMBEDDED if store.availability(e) != "embedded"]
    if missing:
        pytest.fail(f"a broken install: embedded model packages missing: {', '.join(missing)} (make install installs them)")


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    """One home for the module, so the GGUF's plain copy (transformers and CTranslate2 only) is made once."""
    _require_embedded()
    return tmp_path_factory.mktemp("e2e-home")


@pytest.fixture
def home(shared_home: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DESKTOP_AI_HOME", str(shared_home))
    return shared_home


def _is_fluent_english(text: str) -> bool:
    words = re.findall(r"[A-Za-z']+", text.lower())
    ascii_share = sum(c.isascii() for c in text) / max(1, len(text))
    return len(words) >= 6 and ascii_share > 0.95 and len(COMMON_WORDS & set(words)) >= 2


@pytest.mark.parametrize(("runtime", "compression", "reported"), [
    ("auto", "none", "Q4_1 (GGUF)"),  # llama.cpp: skips where llama-cpp-python did not build, fails so in CI
    ("ctranslate2", "int8", "int8"),
    ("transformers", "none", "none"),
    ("transformers", "int8", "int8"),
])
def test_embedded_model_writes_fluent_english(home, runtime, compression, reported):
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator
    from desktop_ai.engine.workspace import open_workspace

    if runtime == "auto":
        require_llama_cpp()
    workspace = open_workspace()
    generator = TextGenerator(workspace.store, workspace.cache, compression=compression, runtime=runtime)
    pieces: list[str] = []
    result = generator.run(
        "Write one sentence about the sea.", GenerationOptions(max_new_tokens=40, temperature=0.0), on_partial=pieces.append
    )
    assert _is_fluent_english(result.text), result.text
    assert len(pieces) > 3, "the answer must stream, not arrive at once"
    assert result.compression == reported
    assert result.runtime == ("llama.cpp" if runtime == "auto" else runtime)
    workspace.close()


def test_embedded_classifier_gets_sentiment_right(home):
    from desktop_ai.engine.tasks.text_classification import TextClassifier
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace()
    batch = TextClassifier(workspace.store, workspace.cache).run(["I love this product", "terrible, a waste of money"])
    assert [r.label for r in batch.results] == ["positive", "negative"]
    assert all(r.scores[0].score > 0.6 for r in batch.results)
    workspace.close()


def test_embedded_zero_shot_labels(home):
    from desktop_ai.engine.tasks.text_classification import TextClassifier
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace()
    batch = TextClassifier(workspace.store, workspace.cache).run(
        ["The striker scored twice in the final", "Parliament passed the new budget", "The telescope found a new planet"],
        "sport, politics, science",
    )
    assert [r.label for r in batch.results] == ["sport", "politics", "science"]
    workspace.close()


def test_cli_classify_json_on_the_real_model(home):
    exe = Path(sys.executable).with_name("desktop-ai")
    proc = subprocess.run(
        [str(exe), "classify", "I love this product", "terrible, a waste of money", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert "Traceback" not in proc.stderr


def test_window_stays_responsive_with_the_real_model(qtbot, home):
    """The window's event loop, measured while the embedded model loads and generates."""
    from responsiveness import EventLoopProbe

    from desktop_ai.gui.main_window import MainWindow

    corrupt = home / "cache" / "results.sqlite"
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"this is not an sqlite file" * 100)  # the cache must rebuild, not break the window

    window = MainWindow()
    qtbot.addWidget(window)
    probe = EventLoopProbe()
    probe.start()
    window.show()
    page = window.text_tab.generate_page
    page.prompt.setPlainText("Name three colours of the rainbow.")
    page.max_tokens.setValue(24)
    page.temperature.setValue(0.0)
    page.compression_picker.select("int8")
    partial_at: list[float] = []
    window.engine.partial.connect(lambda job, text: partial_at.append(time.perf_counter()))
    with qtbot.waitSignal(window.engine.finished_job, timeout=300_000) as blocker:
        page.generate_button.click()
    responsiveness = probe.stop()
    result = blocker.args[1]
    # Issue 17: was `fluent or len(words) >= 3`, which any three words passed. Fluent, and about the question (in 24
    # tokens SmolLM2 says "The rainbow is a beautiful sight, but it's not just about the colors of the rainbow...").
    assert _is_fluent_english(result.text), result.text
    assert re.search(r"rainbow|colou?rs?\b|red|blue|green|yellow", result.text.lower()), result.text
    assert partial_at, "tokens must stream into the window"
    responsiveness.assert_responsive()
    with qtbot.waitSignal(window.engine.finished_job, timeout=60_000) as again:
        page.generate_button.click()
    assert again.args[1].from_cache
    assert "1 hits" in window.cache_label.text() or qtbot.waitUntil(lambda: "1 hits" in window.cache_label.text(), timeout=5000) is None
    window.close()
    assert list(corrupt.parent.glob("results.sqlite.corrupt-*")), "the corrupt cache file is moved aside"
