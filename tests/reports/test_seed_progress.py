"""seed_demo's first check-in round says how far it is and how long is left (100,000 devices take minutes)."""

from __future__ import annotations

import io

from django.core.management.base import OutputWrapper

from reports.demo import Progress


def test_progress_prints_done_rate_and_time_left_at_most_every_interval(monkeypatch):
    clock = iter([0.0, 5.0, 10.0, 10.5, 20.0, 30.0])
    monkeypatch.setattr("reports.demo.time.monotonic", lambda: next(clock))
    out = io.StringIO()
    # as seed_demo's stdout (a line per write); started at t=0
    progress = Progress(OutputWrapper(out), "Check-ins", 1000, every=10.0)
    progress.update(100)  # t=5: too soon
    progress.update(200)  # t=10: 200 in 10 s = 20/s, 800 left = 40 s
    progress.update(250)  # t=10.5: too soon
    progress.update(800)  # t=20: 40/s, 200 left = 5 s
    progress.update(1000)  # done: the caller prints the summary
    lines = out.getvalue().splitlines()
    assert lines == [
        "  Check-ins: 200 of 1,000 (20 %), 20/s, about 40 s left",
        "  Check-ins: 800 of 1,000 (80 %), 40/s, about 5 s left",
    ]


def test_seed_demo_writes_to_the_stream_it_is_given(db):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("seed_demo", "--devices", "12", "--policies", "2", stdout=out)  # failed: stdout given twice
    assert "Devices: 12" in out.getvalue() and "reports: done in" in out.getvalue()
