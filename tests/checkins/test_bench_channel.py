"""manage.py bench_channel at a tiny size: real agents over real HTTP against a gunicorn it starts (production).

The figures must be printed, no request may fail, and every full check-in must land in the database as a real
device-channel check-in (a CheckinRecord of kind "http" and a moved last check-in) - the benchmark measures the
real path, not a shortcut.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from devices.models import Device, DeviceCredential
from reports.models import CheckinRecord


@pytest.fixture
def small_fleet(transactional_db):
    call_command("seed_demo", "--devices", "40", "--policies", "3", stdout=io.StringIO())


@pytest.mark.parametrize(
    "args",
    [
        ["--agents", "0"],
        ["--concurrency", "0"],
        ["--duration", "0"],
        ["--workers", "0"],
        ["--url", "ftp://x"],
    ],
)
def test_it_refuses_bad_arguments(db, args):
    with pytest.raises(CommandError):
        call_command("bench_channel", *args, stdout=io.StringIO())


@pytest.mark.postgres
def test_agents_check_in_apply_and_report_over_http_and_every_check_in_is_recorded(small_fleet):
    before = CheckinRecord.objects.filter(kind="http").count()
    out = io.StringIO()
    call_command(
        "bench_channel", "--agents", "6", "--concurrency", "2", "--checkins", "12", "--warmup", "0",
        "--duration", "60", "--workers", "1", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "(production)" in text
    full = int(
        re.search(r"Full check-ins: ([\d,]+) in ([\d.]+) s = ([\d.,]+)/s", text).group(1).replace(",", "")
    )
    assert full >= 12
    assert re.search(r"check-in GET\s+p50\s+[\d.]+ ms\s+p95\s+[\d.]+ ms", text)
    assert re.search(r"report POST\s+p50\s+[\d.]+ ms\s+p95\s+[\d.]+ ms", text)
    assert "Errors: 0" in text
    assert re.search(r"CPU share of \d+ cores: server \d+ %, load generator \d+ %", text)
    assert CheckinRecord.objects.filter(kind="http").count() - before >= full
    driven = DeviceCredential.objects.filter(revoked_at__isnull=True).values_list("device_id", flat=True)
    assert Device.objects.filter(pk__in=list(driven), last_checkin_at__isnull=False).count() >= 6
