"""manage.py bench_pages: validates its arguments and prints p50/p95 and the query count of every page."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "args",
    [
        ["--iterations", "0"],
        ["--iterations", "-3"],
        ["--warmup", "5000"],
        ["--per-page", "500"],
        ["--pages", "overview,nonsense"],
        ["--pages", ","],
        ["--budget-ms", "0"],
        ["--policy", "no such policy"],
    ],
)
def test_it_refuses_bad_arguments(world, args):
    with pytest.raises(CommandError):
        call_command("bench_pages", *args, stdout=io.StringIO())


def test_it_refuses_an_empty_tenant(db):
    with pytest.raises(CommandError, match="no policies"):
        call_command("bench_pages", "--iterations", "1", stdout=io.StringIO())


def test_it_times_every_page_as_a_global_administrator(world, frozen_clock):
    out = io.StringIO()
    call_command(
        "bench_pages", "--iterations", "3", "--warmup", "1", "--budget-ms", "60000", "--cold", stdout=out
    )
    text = out.getvalue()
    assert "Fleet: 5 devices, 3 policies" in text
    assert "cache: cleared before each request, DEBUG: off" in text
    for page, status in [
        ("overview", 200),
        ("monitor", 200),
        ("view_report", 200),
        ("view_report_by_status", 200),
        ("view_report_by_last_report", 200),
        ("view_report_errors", 200),
        ("per_setting", 200),
        ("drill_in", 200),
        ("overview_live", 204),
        ("monitor_live", 204),
        ("effective", 200),
        ("effective_live", 204),
    ]:
        line = re.search(rf"^{page}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+/", text, re.M)
        assert line, f"no line for {page}:\n{text}"
        assert int(line.group(1)) == status
        assert float(line.group(2)) <= float(line.group(3)) <= float(line.group(4))  # p50 <= p95 <= max
        assert int(line.group(5)) > 0
    assert "within the 60000 ms p95 budget" in text


def test_check_fails_when_a_page_is_over_budget(world):
    with pytest.raises(CommandError, match="over budget"):
        call_command(
            "bench_pages", "--iterations", "2", "--pages", "overview", "--budget-ms", "0.001", "--check",
            stdout=io.StringIO(),
        )  # fmt: skip


def test_it_times_the_big_lists_with_their_cursor_pages(world):
    out = io.StringIO()
    call_command(
        "bench_pages", "--pages", "lists", "--iterations", "2", "--warmup", "1", "--budget-ms", "60000",
        "--per-page", "2", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    for page in [
        "devices",
        "devices_by_display_name",
        "devices_by_last_checkin_at",
        "devices_desc_checkin",
        "devices_mde",
        "devices_os",
        "devices_search",
        "devices_last",
        "group_members",
        "group_last",
        "audit_log",
        "audit_last",
        "device_page",
        "policy_list",
    ]:
        line = re.search(rf"^{page}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d-]+)\s+/", text, re.M)
        assert line, f"no line for {page}:\n{text}"
        assert int(line.group(1)) == 200
    assert re.search(r"^devices_last\s+200 .*\?last=1$", text, re.M)
