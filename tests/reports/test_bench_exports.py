"""manage.py bench_exports: validates its arguments, downloads each big CSV and prints rows, rows/s and memory."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from devices.models import Device

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "args", [["--exports", "devices,nonsense"], ["--exports", ","], ["--repeat", "0"], ["--min-rate", "0"]]
)
def test_it_refuses_bad_arguments(world, args):
    with pytest.raises(CommandError):
        call_command("bench_exports", *args, stdout=io.StringIO())


def test_it_counts_every_exported_row_and_prints_rate_and_memory(world):
    out = io.StringIO()
    call_command("bench_exports", "--tracemalloc", stdout=out)
    text = out.getvalue()
    line = re.search(
        r"^devices\s+([\d,]+)\s+([\d.]+)\s+([\d,]+)\s+([\d.]+)\s+(\d+) ->\s+(\d+)\s+([\d.]+)$", text, re.M
    )
    assert line, text
    assert int(line.group(1).replace(",", "")) == Device.objects.count()
    assert int(line.group(5)) <= int(line.group(6))  # peak RSS only grows
    assert re.search(r"^policy_devices\s+[\d,]+\s+", text, re.M)
    assert re.search(r"^audit_log\s+[\d,]+\s+", text, re.M)


def test_check_fails_below_the_rate(world):
    Device.objects.bulk_create([Device(display_name=f"PC-{i:05d}", os="windows") for i in range(1500)])
    with pytest.raises(CommandError, match="below the rows/s target"):
        call_command(
            "bench_exports", "--exports", "devices", "--min-rate", "9999999", "--check", stdout=io.StringIO()
        )
