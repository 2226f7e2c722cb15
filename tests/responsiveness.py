"""How responsive the window's event loop stays, measured the way a user feels it, robust to one hiccup.

The promise is that the window answers within 100 ms while models load and run (they run in the engine's
process, never on the GUI thread). A 10 ms timer ticks on the GUI thread; a gap of g seconds between two ticks
means a click in that gap waited up to g. The measure is the share of the measured time in which a click would
have waited more than 100 ms. One wall-clock worst case is not the measure: on a shared 2-core machine the
scheduler can hold any process for a few hundred milliseconds, which says nothing about the app. A model run on
the GUI thread stalls the loop for the whole load and run, and a per-token stall over 100 ms repeats on every
token: either puts more than MAX_STALLED_SHARE of the time in stalls. One stall longer than HANG_S (ten times the
rule) fails whatever the share: that is a hang, not a hiccup. The worst gap is always reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import QEventLoop, Qt, QTimer

TICK_S = 0.010
LATE_S = 0.100  # the rule: the window answers within 100 ms
MAX_STALLED_SHARE = 0.05
HANG_S = 1.0
MIN_WINDOW_S = 3.0  # short jobs are measured over at least this much: a 250 ms hiccup passes, a longer freeze fails


@dataclass
class Responsiveness:
    """What the probe saw: the measured time, the time clicks waited more than LATE_S, and the worst gap."""

    measured_s: float
    stalled_s: float
    stalls: int
    worst_s: float
    ticks: int

    @property
    def stalled_share(self) -> float:
        return self.stalled_s / self.measured_s if self.measured_s > 0 else 1.0

    def describe(self) -> str:
        return (f"over {self.measured_s:.2f} s ({self.ticks} ticks of {TICK_S * 1000:.0f} ms), clicks waited more than "
                f"{LATE_S * 1000:.0f} ms for {self.stalled_share:.1%} of the time ({self.stalled_s * 1000:.0f} ms in "
                f"{self.stalls} stall(s)); the worst stall was {self.worst_s * 1000:.0f} ms "
                f"(allowed: {MAX_STALLED_SHARE:.0%} of the time, no stall over {HANG_S * 1000:.0f} ms)")

    def assert_responsive(self) -> None:
        assert self.stalled_share <= MAX_STALLED_SHARE and self.worst_s <= HANG_S, \
            f"the event loop was unresponsive: {self.describe()}"


class EventLoopProbe:
    """Ticks a 10 ms timer on the GUI thread and records every gap between ticks."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._started = 0.0
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self._started = self._last = time.perf_counter()
        self._timer.start(int(TICK_S * 1000))

    def stop(self) -> Responsiveness:
        """Stops ticking, first measuring on (the event loop running) until MIN_WINDOW_S has passed."""
        remaining_ms = int((self._started + MIN_WINDOW_S - time.perf_counter()) * 1000)
        if remaining_ms > 0:
            loop = QEventLoop()
            QTimer.singleShot(remaining_ms, loop.quit)
            loop.exec()
        self._timer.stop()
        now = time.perf_counter()
        gaps = [*self.gaps, now - self._last]
        late = [gap - LATE_S for gap in gaps if gap > LATE_S]
        return Responsiveness(measured_s=now - self._started, stalled_s=sum(late), stalls=len(late),
                              worst_s=max(gaps) if gaps else 0.0, ticks=len(self.gaps))
