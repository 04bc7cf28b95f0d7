"""manage.py bench_http at a tiny size: signed-in clients load pages over real HTTP from a gunicorn it starts
(production layout, with collected static files); every request must be answered 200 and the figures printed."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    "args",
    [
        ["--concurrency", "0"],
        ["--duration", "0"],
        ["--workers", "0"],
        ["--threads", "0"],
        ["--pages", "devices,nonsense"],
        ["--url", "ftp://x"],
    ],
)
def test_it_refuses_bad_arguments(db, args):
    with pytest.raises(CommandError):
        call_command("bench_http", *args, stdout=io.StringIO())


def test_it_refuses_an_empty_tenant(db):
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("bench_http", "--duration", "1", stdout=io.StringIO())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("threads", "layout"),
    [([], "--threads 1"), (["--threads", "2"], "--threads 2")],  # the README's page pool (sync), and gthread
)
def test_pages_are_served_to_concurrent_signed_in_admins_without_an_error(transactional_db, threads, layout):
    call_command("seed_demo", "--devices", "30", "--policies", "3")
    out = io.StringIO()
    call_command(
        "bench_http", "--concurrency", "3", "--duration", "2", "--warmup", "0.5", "--workers", "1",
        *threads, "--check-rate", "0.5", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "(production)" in text and f"--workers 1 {layout} on" in text
    for page in ("devices", "policy_report", "device"):
        line = re.search(rf"^{page}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+\d+ %", text, re.M)
        assert line, f"no line for {page}:\n{text}"
        assert float(line.group(1)) > 0 and int(line.group(5)) == 0
        assert float(line.group(2)) <= float(line.group(3)) <= float(line.group(4))
