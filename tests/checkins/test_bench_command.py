"""bench_checkins: refuses bad arguments with a clear message; on PostgreSQL + Redis it runs end to end."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "0"], "--devices must be between 1 and 2,000,000."),
        (["--devices", "3000000"], "--devices must be between 1 and 2,000,000."),
        (["--policies", "0"], "--policies must be between 1 and 500."),
        (["--workers", "-1"], "--workers must be between 0 (use running workers) and 32."),
        (["--batch-size", "5"], "--batch-size must be between 10 and 1,000."),
        (["--timeout", "1"], "--timeout must be at least 10 seconds."),
    ],
)
def test_it_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError) as refused:
        call_command("bench_checkins", *args, stdout=io.StringIO())
    assert message in str(refused.value)


def test_it_refuses_to_measure_anything_but_postgresql(db):
    if connection.vendor == "postgresql":
        pytest.skip("this database is PostgreSQL")
    with pytest.raises(CommandError, match="bench_checkins measures PostgreSQL: set DATABASE_URL"):
        call_command("bench_checkins", "--devices", "10", stdout=io.StringIO())


@pytest.mark.postgres
@pytest.mark.worker
def test_it_runs_end_to_end_on_postgresql_redis_and_a_real_worker(transactional_db, monkeypatch):
    db = connection.settings_dict
    monkeypatch.setenv("DATABASE_URL", f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    out = io.StringIO()

    call_command(
        "bench_checkins", "--devices", "400", "--policies", "6", "--workers", "1", "--sync-sample", "3",
        "--timeout", "300", stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert re.search(r"Pass 1 .*\n  [\d,]+ check-ins in [\d.]+ s = [\d,.]+ check-ins/s end to end", text)
    per = float(re.search(r"statements per check-in with nothing to change: ([\d.]+)", text).group(1))
    assert per <= 2
    assert re.search(r"Between the rounds: VACUUM \(ANALYZE\) .*, [\d.]+ s", text)
    assert text.index("Between the rounds") < text.index("Pass 2")
    floor = re.search(r"Floor - PostgreSQL COPY of the rows pass 1 wrote: ([\d,]+) rows", text)
    copied = {
        table: int(rows.replace(",", ""))
        for table, rows in re.findall(r"(\w+) ([\d,]+)", re.search(r"rows copied: (.*)", text).group(1))
    }
    # Every table pass 1 writes is in the yardstick, the effective settings Windows devices report included.
    assert set(copied) == {
        "reports_devicesettingstatus", "reports_devicepolicystatus", "reports_deviceeffectivesetting",
        "reports_checkinrecord", "devices_device",
    }  # fmt: skip
    assert copied["reports_deviceeffectivesetting"] > 0
    assert sum(copied.values()) == int(floor.group(1).replace(",", ""))
    assert re.search(r"pass 1 reached [\d.]+ % of it \(target ≥ 25 %: (met|NOT met)\)", text)
    assert re.search(r"pass 2 writes no status rows and reached [\d.]+ % of the same floor", text)
    # The second yardstick: the same rows into tables with the reports' indexes, dropped afterwards.
    assert re.search(
        r"the same rows into logged tables with the status tables' indexes: [\d.]+ s = [\d,]+ check-ins/s; "
        r"pass 1 reached [\d.]+ % of it",
        text,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'bench\\_%%'")
        assert cursor.fetchone()[0] == 0
    assert "Policy sync round trip" in text
    storage = re.search(r"Storage: ([\d,]+) MB for ([\d,]+) devices = ([\d,]+) bytes per device", text)
    assert storage and int(storage.group(2).replace(",", "")) == 400
    assert int(storage.group(3).replace(",", "")) > 1000  # a device, its rows and indexes: kilobytes
