"""Reading streamed text aloud: sentences are spoken as they complete, in order, before the text has ended; Stop
silences at once; the engine lane's "speak" job reads text fed to it while it runs."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from desktop_ai.engine.audio.synthesis.read_aloud import StreamingReader, speakable
from desktop_ai.engine.audio.synthesis.synthesizer import SpeechSynthesizer

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")

ANSWER = ("The capital of France is Paris. It lies on the river Seine, in the north of the country. "
          "Millions of people visit it every year.")


@pytest.fixture(scope="module")
def synthesizer() -> SpeechSynthesizer:
    return SpeechSynthesizer()


def tokens(text: str) -> list[str]:
    """Split like a language model streams: each word with its leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


def test_markdown_is_read_without_its_marks():
    assert speakable("**Paris** is _big_. See [the map](http://x.y).").split() == "Paris is big . See the map.".split()
    assert "print" not in speakable("Run this:\n```python\nprint(1)\n```\nDone.")
    assert "print" not in speakable("Run this:\n```python\nprint(1)")  # a code block still being written


def test_sentences_are_spoken_as_they_complete_before_the_text_ends(synthesizer, virtual_microphone):
    from desktop_ai.engine.audio.microphone import MicrophoneStream

    spoken: list[str] = []
    with MicrophoneStream() as recording:
        reader = StreamingReader(synthesizer, on_sentence=spoken.append).start()
        first, rest = ANSWER.split(" It lies")
        for token in tokens(first):
            reader.feed(token)
        assert reader.report.first_sentence_at is None  # "Paris." could still go on ("Paris. Texas"?): not cut yet
        reader.feed(" It")  # the next sentence begins: the first is complete
        assert reader.report.first_sentence_at is not None
        assert reader.player.sounding.wait(20), reader.report  # it speaks while the answer is still being written
        assert not reader.done and spoken == ["The capital of France is Paris."]
        chunks = [recording.read(timeout=0.3)]
        for token in tokens(" It lies" + rest)[2:]:
            reader.feed(token)
        reader.close()
        while not reader.wait(0.05):
            chunks.append(recording.read(timeout=0.1))
        chunks.append(recording.read(timeout=0.2))
    report = reader.report
    assert report.error is None and not report.stopped
    assert spoken == report.sentences == ["The capital of France is Paris.", "It lies on the river Seine, in the north of "
                                          "the country.", "Millions of people visit it every year."]
    assert 0 < report.first_sound_latency_s < 10
    assert report.played_s > 5
    assert np.max(np.abs(np.concatenate(chunks))) > 0.1  # the monitor heard it


def test_stop_ends_a_reading_at_once(synthesizer, virtual_microphone):
    reader = StreamingReader(synthesizer).start()
    reader.feed(ANSWER + " " + ANSWER)
    assert reader.player.sounding.wait(20)
    reader.stop()
    assert reader.player.stopped  # silent now (test_speech_synthesis measures it on the sink); the sentence being
    assert reader.wait(10)  # made when Stop came is finished by ONNX Runtime, then dropped
    assert reader.report.stopped and len(reader.report.sentences) < 6
    assert reader.report.played_s < 6


def test_the_speak_job_reads_text_fed_while_it_runs(synthesizer, virtual_microphone, workspace):
    """The lane's protocol: ("job", id, "speak", {"stream": True}), then ("feed", id, text) ..., ("feed", id, None)."""
    import queue

    from desktop_ai.engine.process import _run_job

    sent: list[tuple] = []
    inbox: queue.Queue = queue.Queue()
    job = threading.Thread(target=_run_job, args=(sent.append, threading.Event(), workspace, 5, "speak",
                                                 {"stream": True, "speed": 1.5}, inbox))
    job.start()
    for token in tokens(ANSWER):
        inbox.put(token)
    inbox.put(None)
    job.join(60)
    assert not job.is_alive()
    partials = [m[2]["sentence"] for m in sent if m[0] == "partial" and "sentence" in m[2]]
    assert len(partials) == 3 and partials[0] == "The capital of France is Paris."
    finished = [m for m in sent if m[0] == "finished"]
    assert finished and finished[0][2]["played_s"] > 3 and not finished[0][2]["stopped"]
    # what reached the sound card, as loudness envelopes for voice chat's echo check (engine/audio/echo.py)
    played = [e for m in sent if m[0] == "partial" and "played" in m[2] for e in m[2]["played"]]
    assert all(set(m[2]) in ({"sentence"}, {"played"}) for m in sent if m[0] == "partial")
    covered_s = sum(len(e["db"]) for e in played) * 0.02
    assert abs(covered_s - finished[0][2]["played_s"]) < 0.3, (covered_s, finished[0][2]["played_s"])
    assert all(later["start"] >= earlier["start"] for earlier, later in zip(played, played[1:]))


def test_the_speak_job_refuses_empty_text_and_is_stopped_by_cancel(virtual_microphone, workspace):
    import queue

    from desktop_ai.engine.process import _run_job

    sent: list[tuple] = []
    _run_job(sent.append, threading.Event(), workspace, 6, "speak", {"text": " "})
    assert sent[-1][0] == "failed" and "no text to read aloud" in sent[-1][2]
    sent.clear()
    cancel = threading.Event()
    inbox: queue.Queue = queue.Queue()
    job = threading.Thread(target=_run_job, args=(sent.append, cancel, workspace, 7, "speak", {"stream": True}, inbox))
    job.start()
    inbox.put(ANSWER)  # never closed: only Stop ends it
    cancel.set()
    job.join(10)
    assert not job.is_alive() and sent[-1][0] == "finished" and sent[-1][2]["stopped"]
