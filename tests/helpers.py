"""Small helpers shared by tests (import as `from tests.helpers import …`)."""

from __future__ import annotations

import time

PASSWORD = "correct-horse-battery-staple"


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    """Polls until predicate() is truthy and returns its value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
