"""Fixtures for the check-in tests (builders live in tests/checkins/fleet.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def eager_celery(settings):
    """Run queued tasks in-process at once (the signal -> on_commit -> task path, without a broker).

    Set through Django's settings and on the app (an earlier test may have fixed Celery's conf), then restored.
    """
    from console.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


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
