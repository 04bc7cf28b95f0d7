from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "CONSOLE_PRODUCTION": "true",
    "SECRET_KEY": "x" * 64,
    "ALLOWED_HOSTS": "console.contoso.com",
    "DATABASE_URL": "postgres://u:p@db.contoso.com:5432/mde",
    "CELERY_BROKER_URL": "redis://redis.contoso.com:6379/0",
    "CACHE_URL": "redis://redis.contoso.com:6379/1",
}


def load_settings(tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if k not in GOOD and k != "DEBUG"}
    env.update(GOOD, CONSOLE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="console.settings")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_starts_with_every_variable_set(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout


def test_production_refuses_to_start_without_secret_key_and_names_it(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY=None)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_refuses_missing_database_url(tmp_path):
    result = load_settings(tmp_path, DATABASE_URL=None)
    assert "DATABASE_URL is not set" in result.stderr


def test_production_refuses_sqlite(tmp_path):
    result = load_settings(tmp_path, DATABASE_URL="sqlite:///x.db")
    assert "must point at PostgreSQL" in result.stderr


def test_production_refuses_filesystem_broker(tmp_path):
    result = load_settings(tmp_path, CELERY_BROKER_URL="filesystem://")
    assert "redis://" in result.stderr


def test_production_refuses_debug(tmp_path):
    result = load_settings(tmp_path, DEBUG="true")
    assert "DEBUG must be off" in result.stderr


def test_production_refuses_wildcard_hosts(tmp_path):
    result = load_settings(tmp_path, ALLOWED_HOSTS="*")
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_refuses_a_weak_secret_key(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="short")
    assert "too weak" in result.stderr


def test_local_defaults_need_no_server_and_keep_a_generated_key(tmp_path):
    env_off = dict.fromkeys(GOOD)
    first = load_settings(tmp_path, **env_off)
    assert first.returncode == 0, first.stderr
    assert "sqlite3" in first.stdout
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    load_settings(tmp_path, **env_off)
    assert (tmp_path / "secret_key").read_text() == key
    assert (tmp_path / "broker" / "queue").is_dir()
