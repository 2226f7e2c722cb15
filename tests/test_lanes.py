"""Jobs side by side: two engine lanes (live dictation, everything else), jobs in one lane running at once,
per-tab Stop, a crash of one lane that loses nothing of the other, the memory budget, and the result cache
shared by several processes."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QUrl

from desktop_ai.bench.transcribe import word_errors
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.memory import weights_bytes_on_disk as weights_bytes
from desktop_ai.engine.models.store import LoadedModels, ModelStore
from desktop_ai.gui.main_window import MainWindow

from responsiveness import EventLoopProbe
from test_gui import ENGINE_START_MS, JOB_MS, drag_and_drop, url_mime

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
SAMPLES = SHARED / "sample_images"
EXPECTED = {"dog.jpg": "Samoyed", "bird.jpg": "drake", "wasmedge_input.jpg": "banana", "aicook1.jpg": "refrigerator"}


# --- the cache across processes ------------------------------------------------------------------

def _write_many(path: str, worker: int, count: int, start: multiprocessing.synchronize.Barrier) -> tuple[bool, int]:
    cache = ResultCache(Path(path))
    start.wait(30)
    for i in range(count):
        cache.put(f"{worker}-{i}", {"worker": worker, "i": i, "text": "x" * (i % 50)})
    persistent = cache.persistent
    read_back = sum(1 for i in range(count) if cache.get(f"{worker}-{i}") is not None)
    cache.close()
    return persistent, read_back


def test_two_processes_writing_the_cache_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two engine lanes (here: two spawned processes) write the same SQLite file at the same moment."""
    path = tmp_path / "results.sqlite"
    ResultCache(path).close()  # the file exists, in WAL mode, before they race
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Barrier(2)
    count = 300
    with context.Pool(2) as pool:
        outcomes = pool.starmap(_write_many, [(str(path), w, count, start) for w in (1, 2)])
    assert outcomes == [(True, count), (True, count)], "neither process fell back to memory only"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(db.execute("SELECT key, value FROM results").fetchall())
    db.close()
    assert len(rows) == 2 * count, "every write of both processes is on disk"
    fresh = ResultCache(path)
    assert fresh.get("2-299") == {"worker": 2, "i": 299, "text": "x" * (299 % 50)}
    assert fresh.stats().entries_on_disk == 2 * count
    fresh.close()


# --- the memory budget ----------------------------------------------------------------------------

def test_before_a_model_loads_the_least_recently_used_is_unloaded() -> None:
    loaded = LoadedModels(budget_bytes=150)
    seen_during_load: list[int] = []

    def loader(name: str):
        def load():
            seen_during_load.append(len(loaded))
            return name, 100
        return load

    loaded.get_or_load(("first",), loader("A"), estimate_bytes=100)
    assert loaded.get_or_load(("second",), loader("B"), estimate_bytes=100) == "B"
    assert seen_during_load == [0, 0], "the first model was unloaded before the second one started loading"
    assert [m["model"] for m in loaded.describe()] == ["second"]
    assert loaded.unloads == 1


def test_a_model_larger_than_the_whole_budget_is_refused_with_the_numbers() -> None:
    loaded = LoadedModels(budget_bytes=50_000_000)
    loaded.get_or_load(("small",), lambda: ("S", 10_000_000), estimate_bytes=10_000_000)
    calls: list[str] = []
    with pytest.raises(ModelUnavailableError) as error:
        loaded.get_or_load(("huge-model",), lambda: calls.append("loaded") or ("H", 1), estimate_bytes=80_000_000)
    message = str(error.value)
    assert "huge-model" in message and "80 MB" in message and "50 MB" in message and "Memory budget" in message
    assert calls == [], "nothing was loaded"
    assert [m["model"] for m in loaded.describe()] == ["small"], "what was loaded stays"


def test_real_models_within_a_small_budget(tmp_path: Path, tiny_causal_lm_dir: Path, tiny_sequence_classifier_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With a budget that holds either real model but not both, loading the second unloads the first; and with
    a budget (the setting, through DESKTOP_AI_MEMORY_BUDGET_MB) smaller than a model, it is refused, not loaded."""
    from desktop_ai.engine.tasks.text_classification import TextClassifier
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    lm, classifier = weights_bytes(tiny_causal_lm_dir), weights_bytes(tiny_sequence_classifier_dir)
    assert lm > 0 and classifier > 0
    store = ModelStore(tmp_path / "converted", memory_budget_bytes=max(lm, classifier) * 3 // 2)
    TextGenerator(store, None, str(tiny_causal_lm_dir), runtime="transformers").run(
        "hello", GenerationOptions(max_new_tokens=2, temperature=0))
    assert [m["model"] for m in store.loaded.describe()] == [str(tiny_causal_lm_dir)]
    TextClassifier(store, None, str(tiny_sequence_classifier_dir)).run(["fine"])
    assert len(store.loaded) == 1 and store.loaded.unloads == 1, store.loaded.describe()
    assert store.loaded.describe()[0]["model"] != str(tiny_causal_lm_dir), "the generator was unloaded"

    monkeypatch.setenv("DESKTOP_AI_MEMORY_BUDGET_MB", "1")
    small = ModelStore(tmp_path / "converted")
    assert small.loaded.budget_bytes == 1_000_000
    with pytest.raises(ModelUnavailableError) as refused:
        TextGenerator(small, None, str(tiny_causal_lm_dir), runtime="transformers").run(
            "hello", GenerationOptions(max_new_tokens=2, temperature=0))
    assert "GB" in str(refused.value) or "MB" in str(refused.value), "the message gives the numbers"
    assert len(small.loaded) == 0, "nothing was loaded"


# --- the window: lanes side by side ---------------------------------------------------------------

@pytest.fixture
def lanes_window(virtual_microphone, qtbot):
    """The virtual microphone starts first, so both engine processes inherit PULSE_SERVER."""
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: all(lane.ready_info is not None for lane in win.lanes), timeout=ENGINE_START_MS)
    yield win, virtual_microphone
    win.close()


class _Overlap:
    """The most jobs running at one moment, over both lanes, from the lanes' own started/finished signals."""

    def __init__(self, win: MainWindow) -> None:
        self.running: set[int] = set()
        self.most = 0
        for lane in win.lanes:
            lane.started_job.connect(self._started)
            lane.finished_job.connect(lambda job, _result: self.running.discard(job))
            lane.failed.connect(lambda job, _message: self.running.discard(job))

    def _started(self, job: int, _name: str) -> None:
        self.running.add(job)
        self.most = max(self.most, len(self.running))


def _start_dictation(qtbot, win: MainWindow) -> list[dict]:
    tab = win.speech_tab
    events: list[dict] = []
    win.live_engine.partial.connect(lambda job, payload: events.append(payload) if isinstance(payload, dict) else None)
    tab.record_button.click()
    qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)  # the microphone is open
    return events


def _start_generation(win: MainWindow, model: Path, prompt: str, tokens: int, temperature: float = 0.0) -> None:
    page = win.text_tab.generate_page
    page.model_picker.select(str(model))
    page.prompt.setPlainText(prompt)
    page.max_tokens.setValue(tokens)
    page.temperature.setValue(temperature)
    page.generate_button.click()


def test_dictation_an_image_folder_and_a_generation_run_side_by_side(lanes_window, qtbot, tmp_path, tiny_causal_lm_dir):
    """Issue 17 (skips): the photos every install has (tests/packaged_photos.py), and the shared ones where present."""
    from packaged_photos import TOP1, packaged_photos
    from virtual_microphone import LIVE_SENTENCE

    win, mic = lanes_window
    assert win.speech_tab.engine is win.live_engine and win.text_tab.generate_page.engine is win.engine
    assert win.live_engine.process_pid != win.engine.process_pid, "dictation has an engine process of its own"
    folder = tmp_path / "photos"
    folder.mkdir()
    expected = dict(TOP1)
    for photo in packaged_photos():
        (folder / photo.name).write_bytes(photo.read_bytes())
    if SAMPLES.is_dir():
        expected |= EXPECTED
        for name in EXPECTED:
            (folder / name).write_bytes((SAMPLES / name).read_bytes())
    image_tab = win.image_tab  # on its default, the embedded EfficientNet-Lite0 (ONNX Runtime)
    finished: dict[int, object] = {}
    win.engine.finished_job.connect(lambda job, result: finished.__setitem__(job, result))
    overlap = _Overlap(win)
    probe = EventLoopProbe()
    probe.start()

    events = _start_dictation(qtbot, win)
    wav = mic.speak(LIVE_SENTENCE)  # what tiny.en hears in every alignment (tests/virtual_microphone.py)
    mic.play(wav, wait=False)
    drag_and_drop(image_tab.results.viewport(), url_mime(QUrl.fromLocalFile(str(folder))))
    image_job = image_tab.job_id
    _start_generation(win, tiny_causal_lm_dir, "side by side", 48)
    text_job = win.text_tab.generate_page.job_id
    assert image_job is not None and text_job is not None
    assert "Running:" in win.state_label.text() and len(win.job_status.running()) >= 2
    qtbot.waitUntil(lambda: image_job in finished and text_job in finished, timeout=JOB_MS)
    qtbot.waitUntil(lambda: len(win.speech_tab.document.phrases) >= 1, timeout=JOB_MS)
    with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
        win.speech_tab.stop_button.click()
    responsiveness = probe.stop()

    batch = finished[image_job]
    tops = {Path(r.path).name: r.predictions[0].label for r in batch.results}
    assert all(expected[name] in tops[name] for name in expected), tops
    generated = finished[text_job]
    assert generated.new_tokens > 0 and not generated.stopped
    assert generated.text.strip() and generated.text.strip() in win.text_tab.generate_page.output.toPlainText()
    assert word_errors(win.speech_tab.document.phrases[0].text, LIVE_SENTENCE) <= 1, [p.text for p in win.speech_tab.document.phrases]
    assert any(e.get("type") == "final" for e in events)
    responsiveness.assert_responsive()
    assert overlap.most == 3, "dictation, the photos and the generation were all running at one moment"
    assert win.state_label.text() == "Idle"
    qtbot.waitUntil(lambda: "loaded" in win.job_status.models_label.text(), timeout=5000)
    assert "MB" in win.job_status.models_label.text()


def test_stop_on_one_tab_stops_only_its_job(qtbot, tiny_long_causal_lm_dir, tiny_marian_dir):
    """Generation and translation run at once in the jobs lane; Stop on the Text tab leaves the translation alone."""
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.engine.ready_info is not None, timeout=ENGINE_START_MS)
        page = win.text_tab.generate_page
        translate = win.translate_tab
        translate.model_picker.select(str(tiny_marian_dir))
        translate.input.setPlainText("\n".join(f"Sentence number {i} is here." for i in range(300)))
        results: dict[int, object] = {}
        win.engine.finished_job.connect(lambda job, result: results.__setitem__(job, result))
        # Greedy with room for 4000 tokens (see the fixture), on transformers, the slowest runtime: the answer is
        # still being written when the translation has started and Stop arrives (a sampled 200-token answer on
        # CTranslate2 could end first on a busy machine).
        page.runtime_picker.select("transformers")
        with qtbot.waitSignal(win.engine.partial, timeout=JOB_MS):
            _start_generation(win, tiny_long_causal_lm_dir, "stop me", 4000)
        generation = page.job_id
        translate.translate_button.click()
        translation = translate.job_id
        qtbot.waitUntil(lambda: len(win.engine.running_jobs()) == 2, timeout=JOB_MS)
        page.stop_button.click()
        qtbot.waitUntil(lambda: generation in results and translation in results, timeout=JOB_MS)
        assert results[generation].stopped and results[generation].new_tokens < 4000
        assert not results[translation].stopped
        assert results[translation].translated == 300
    finally:
        win.close()


def test_killing_one_lane_loses_nothing_of_the_other(lanes_window, qtbot, tiny_causal_lm_dir):
    win, _mic = lanes_window
    _start_dictation(qtbot, win)
    live_pid, jobs_pid = win.live_engine.process_pid, win.engine.process_pid
    with qtbot.waitSignal(win.engine.finished_job, timeout=JOB_MS) as generated:
        _start_generation(win, tiny_causal_lm_dir, "keep me", 64)
        with qtbot.waitSignal(win.live_engine.failed, timeout=JOB_MS) as lost:
            win.live_engine._process.kill()
    assert "stopped unexpectedly" in lost.args[1] and "live lane" in lost.args[1]
    assert win.speech_tab.notice.text(), "the Speech tab says what happened"
    result = generated.args[1]
    assert result.new_tokens == 64 and not result.stopped, "the other lane's job finished whole"
    assert win.engine.process_pid == jobs_pid and win.engine._process.is_alive()
    win.speech_tab.record_button.click()  # the live lane starts again with the next job
    qtbot.waitUntil(lambda: win.live_engine.process_pid not in (None, live_pid), timeout=JOB_MS)
    qtbot.waitUntil(lambda: win.speech_tab.recording, timeout=JOB_MS)
    with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
        win.speech_tab.stop_button.click()
