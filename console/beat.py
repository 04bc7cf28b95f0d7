"""Celery beat's scheduler with a heartbeat: beat itself says it is alive (CELERY_BEAT_SCHEDULER points here)."""

from __future__ import annotations

import time

from celery.beat import PersistentScheduler

from . import heartbeats


class HeartbeatScheduler(PersistentScheduler):
    """The usual file-backed schedule, plus a "beat" heartbeat row stamped at most every heartbeats.INTERVAL.

    The stamp happens before the schedule is run, so a tick that fails still proves the process is up; database
    errors are caught and logged by the pulse (once, and once more on recovery) so beat never dies of them.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._pulse = heartbeats.Pulse(heartbeats.BEAT)
        self._next_stamp = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        now = time.monotonic()
        if now >= self._next_stamp:
            self._pulse.beat()
            self._next_stamp = now + heartbeats.INTERVAL
        # Sleep no longer than the heartbeat interval, even when the next scheduled task is further away.
        return min(super().tick(*args, **kwargs), heartbeats.INTERVAL)
