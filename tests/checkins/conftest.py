"""Fixtures for the check-in tests (builders live in tests/checkins/fleet.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def sent_tasks(monkeypatch):
    """Capture apply_async/delay of our check-in tasks instead of sending them: [(task name, args, options)]."""
    from devices import checkins

    sent: list[tuple[str, list, dict]] = []
    for task in (checkins.checkin_batch, checkins.policy_sync):

        def capture(args=None, kwargs=None, _task=task, **options):
            sent.append((_task.name, list(args or []), options))

        monkeypatch.setattr(task, "apply_async", capture)
    return sent
