"""Shared fixtures: people in each role, a real Celery worker, and Debian's Chromium for Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, purge_broker, worker_process

ROOT = Path(__file__).resolve().parent.parent

# Playwright's sync API runs an event loop in this thread; Django must still allow its ORM here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SERVICES = os.environ.get("DATABASE_URL", "").startswith("postgres")


def pytest_collection_modifyitems(config, items):
    # Outside `make test` (no PostgreSQL/Redis started), tests that need the real parts say so instead of failing.
    if SERVICES:
        return
    skip = pytest.mark.skip(reason="needs the real PostgreSQL/Redis that `make test` starts")
    for item in items:
        if "worker" in item.keywords or "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Cheap key stretching for the people the tests create (tests/hashers.py)."""
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(
        PASSWORD_HASHERS=["tests.hashers.FastPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    ):
        yield


@pytest.fixture
def make_user(db, django_user_model):
    from django.contrib.auth.models import Group

    from console.roles import sync_roles

    def make(username: str, role: str | None):
        sync_roles()
        user = django_user_model.objects.create_user(username=username, password=PASSWORD)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def global_admin(make_user):
    from console.roles import GLOBAL_ADMIN

    return make_user("ga", GLOBAL_ADMIN)


@pytest.fixture
def security_manager(make_user):
    from console.roles import ENDPOINT_SECURITY_MANAGER

    return make_user("esm", ENDPOINT_SECURITY_MANAGER)


@pytest.fixture
def reader(make_user):
    from console.roles import READ_ONLY_OPERATOR

    return make_user("reader", READ_ONLY_OPERATOR)


@pytest.fixture
def frozen_clock(monkeypatch):
    """Pins ``django.utils.timezone.now`` for one test. Some versions include the minute (the overview's late
    check-ins grow with time): without this a test that crosses a minute boundary sees a legitimate refresh."""
    from django.utils import timezone

    instant = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: instant)
    return instant


@pytest.fixture
def ga_client(client, global_admin):
    client.force_login(global_admin)
    return client


@pytest.fixture
def esm_client(client, security_manager):
    client.force_login(security_manager)
    return client


@pytest.fixture
def reader_client(client, reader):
    client.force_login(reader)
    return client


# ---- a real Celery worker process over the real Redis broker --------------------------------------------


@pytest.fixture
def celery_worker_process(transactional_db):
    """Starts a real Celery worker against the test database and the Redis broker of `make test`.

    The broker starts empty: a message an earlier test left queued (a scheduler tick, a check-in batch sent
    while no worker ran) would otherwise run here against this test's devices. CI once saw a stray tick claim
    the 600 due devices of test_two_workers_never_check_a_device_in_twice before the test could."""
    purge_broker()
    with worker_process("test") as proc:
        yield proc


_EAGER_KEYS = ("task_always_eager", "task_eager_propagates")


@pytest.fixture
def eager_celery():
    """Run queued tasks in-process at once (the signal -> on_commit -> task path, without a broker).

    Celery's explicit configuration layer is put back exactly as it was afterwards (a value left there would
    shadow Django's settings for every later test, whatever order the tests run in).
    """
    from console.celery import app

    app.conf.task_always_eager  # noqa: B018 - loads the configuration before we look at its layers
    changes = app.conf.changes
    saved = {key: changes[key] for key in _EAGER_KEYS if key in changes}
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield app
    for key in _EAGER_KEYS:
        if key in saved:
            changes[key] = saved[key]
        elif key in changes:
            del changes[key]


# ---- Playwright on Debian's Chromium ------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture
def login(live_server, page):
    """Signs a user in through the real login form and returns the page."""

    def do(user, path: str = "/"):
        page.goto(f"{live_server.url}/login/?next={path}")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return do
