"""The status bar's view of the lanes: the running jobs, each with its own progress, the model and runtime of
the latest job, the models each lane holds and their memory, and the result cache's hits and misses added up over
the lanes' processes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtWidgets import QLabel, QWidget

from desktop_ai.engine.cache import CacheStats
from desktop_ai.gui.worker import EngineThread


class JobStatus(QWidget):
    """Not a widget of its own on screen: it keeps three status-bar labels up to date from the lanes' signals."""

    def __init__(self, lanes: list[EngineThread], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lanes = lanes
        self.jobs_label = QLabel("Idle")
        self.jobs_label.setAccessibleName("Running jobs")
        self.models_label = QLabel("Models: none loaded")
        self.models_label.setAccessibleName("Loaded models and their memory")
        self.cache_label = QLabel("cache: starting…")
        self.cache_label.setAccessibleName("Cache hits and misses")
        self.model_label = QLabel()
        self.model_label.setAccessibleName("Model")
        self.runtime_label = QLabel()
        self.runtime_label.setAccessibleName("Runtime")
        self._ran: dict[str, tuple[str, str]] = {}  # lane -> (model, runtime) of its latest job
        self._latest_lane = ""
        self._progress: dict[int, str] = {}  # job id -> "42%" or the latest message
        self._stats: dict[str, CacheStats] = {}
        self._models: dict[str, tuple[list[dict[str, Any]], int]] = {}
        for lane in lanes:
            lane.started_job.connect(lambda job_id, _name: self._refresh_jobs())
            lane.progress.connect(self._on_progress)
            lane.finished_job.connect(self._on_done)
            lane.failed.connect(self._on_done)
            lane.busy_changed.connect(lambda _busy: self._refresh_jobs())
            lane.cache_stats.connect(lambda stats, name=lane.lane: self._on_cache_stats(name, stats))
            lane.models_changed.connect(lambda models, budget, name=lane.lane: self._on_models(name, models, budget))

    # --- jobs -------------------------------------------------------------------------------
    def running(self) -> list[str]:
        """One entry per running job: its name and, once it reports one, its own progress."""
        entries = []
        for lane in self.lanes:
            for job_id, name in lane.running_jobs().items():
                progress = self._progress.get(job_id)
                entries.append(f"{name} {progress}" if progress else name)
        return entries

    def _on_progress(self, job_id: int, message: str, fraction: float) -> None:
        self._progress[job_id] = f"{fraction:.0%}" if fraction >= 0 else ""
        self._refresh_jobs()

    def _on_done(self, job_id: int, *_: Any) -> None:
        self._progress.pop(job_id, None)
        self._refresh_jobs()

    def _refresh_jobs(self) -> None:
        entries = self.running()
        self.jobs_label.setText(("Running: " + " · ".join(entries)) if entries else "Idle")

    # --- what ran ---------------------------------------------------------------------------
    def show_model(self, lane: str, model: str) -> None:
        """A job starts on this lane: its runtime is not known until the page says which one ran it, and the
        runtime of the lane's previous job (another tab's, perhaps) must not stand beside the new model."""
        self._ran[lane] = (model, "")
        self._latest_lane = lane
        self._refresh_ran()

    def show_runtime(self, lane: str, runtime: str) -> None:
        model, _ = self._ran.get(lane, ("", ""))
        self._ran[lane] = (model, runtime)
        self._latest_lane = lane
        self._refresh_ran()

    def _refresh_ran(self) -> None:
        model, runtime = self._ran.get(self._latest_lane, ("", ""))
        self.model_label.setText(f"Model: {model}" if model else "")
        self.runtime_label.setText(f"Runtime: {runtime}" if runtime else "")
        lines = [f"{lane} lane: {m or '-'} on {r or '-'}" for lane, (m, r) in self._ran.items()]
        for label in (self.model_label, self.runtime_label):
            label.setToolTip("\n".join(lines))

    # --- cache ------------------------------------------------------------------------------
    def _on_cache_stats(self, lane: str, stats: CacheStats) -> None:
        self._stats[lane] = stats
        self.cache_label.setText(self.cache_stats().describe())

    def cache_stats(self) -> CacheStats:
        """Each lane counts its own hits and misses; the file they share is the same, so its size is the latest."""
        if not self._stats:
            return CacheStats()
        latest = list(self._stats.values())[-1]
        return replace(
            latest,
            hits=sum(s.hits for s in self._stats.values()),
            misses=sum(s.misses for s in self._stats.values()),
            persistent=all(s.persistent for s in self._stats.values()),
        )

    # --- models -----------------------------------------------------------------------------
    def _on_models(self, lane: str, models: list[dict[str, Any]], budget: int) -> None:
        self._models[lane] = (models, budget)
        loaded = [(lane_name, m) for lane_name, (items, _) in self._models.items() for m in items]
        total = sum(m["mb"] for _, m in loaded)
        if loaded:
            self.models_label.setText(f"Models: {len(loaded)} loaded, {total:,.0f} MB")
        else:
            self.models_label.setText("Models: none loaded")
        lines = [f"{m['model']}: {m['mb']:,.0f} MB ({lane_name} lane{', GPU' if m['gpu'] else ''})" for lane_name, m in loaded]
        budgets = [f"{name} lane budget {b / 1e6:,.0f} MB" for name, (_, b) in self._models.items()]
        self.models_label.setToolTip("\n".join(lines + budgets))
