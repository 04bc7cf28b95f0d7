"""`manage.py bench_faults`, the short variant: it starts its own PostgreSQL, Redis, workers and beat, injects each
fault and must find no loss, no duplicate and a recovery within the limit (so the benchmark cannot rot)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.postgres]


def _bench(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "bench_faults", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_the_short_fault_benchmark_passes_every_fault():
    result = _bench("--devices", "1200", "--embedded-devices", "300", "--quick")

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    header = lines.index("fault, devices due, checked in, lost, duplicated, seconds to full recovery")
    rows = [line.split(", ") for line in lines[header + 1 : header + 5]]
    assert [r[0] for r in rows] == ["kill", "redis", "postgres", "corrupt"]
    for fault, due, checked, lost, duplicated, seconds in rows:
        assert int(due) > 0 and int(checked) == int(due), fault
        assert (lost, duplicated) == ("0", "0"), fault
        assert float(seconds) < 120, fault
    assert lines[header + 5].startswith("verdict: PASS")


def test_it_refuses_unknown_faults_with_the_list_of_known_ones():
    result = _bench("--faults", "kill,meteor")

    assert result.returncode != 0
    assert "Unknown fault(s) meteor; choose from kill, redis, postgres, corrupt." in result.stderr
