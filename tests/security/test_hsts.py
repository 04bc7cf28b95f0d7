"""HSTS and secure cookies (issue 12, item 8): in production the console answers over HTTPS only - directly or
behind a TLS proxy with BEHIND_PROXY=true - with Strict-Transport-Security; plain HTTP is redirected to https://.

Settings are read once per process, so each case runs in a fresh interpreter with the production environment (as
tests/console/test_settings_env.py does) and makes its requests there with Django's test client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "CONSOLE_PRODUCTION": "true",
    "SECRET_KEY": "x" * 64,
    "ALLOWED_HOSTS": "console.contoso.com",
    "DATABASE_URL": "postgres://u:p@db.contoso.com:5432/mde",
    "CELERY_BROKER_URL": "redis://redis.contoso.com:6379/0",
    "CACHE_URL": "redis://redis.contoso.com:6379/1",
}
# A path that answers without a database (the device channel refuses a missing credential with 401).
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client(HTTP_HOST="console.contoso.com")
out = {"cookies_secure": settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE}
for name, kwargs in {
    "http": {},
    "https": {"secure": True},
    "proxy_https": {"headers": {"X-Forwarded-Proto": "https"}},
    "proxy_http": {"headers": {"X-Forwarded-Proto": "http"}},
}.items():
    r = client.get("/devicechannel/v1/checkin", **kwargs)
    out[name] = [r.status_code, r.headers.get("Strict-Transport-Security"), r.headers.get("Location")]
print(json.dumps(out))
"""


def probe(tmp_path, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k not in ("DEBUG", "BEHIND_PROXY")}
    env.update(PRODUCTION, CONSOLE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="console.settings")
    env.update(overrides)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_redirects_plain_http_to_https_in_production(tmp_path):
    answers = probe(tmp_path)
    status, hsts, location = answers["http"]
    assert status == 301 and location == "https://console.contoso.com/devicechannel/v1/checkin"


def test_it_sends_hsts_over_tls_with_secure_cookies(tmp_path):
    answers = probe(tmp_path)
    status, hsts, _ = answers["https"]
    assert status == 401 and hsts == "max-age=31536000"
    assert answers["cookies_secure"] is True


def test_it_sends_hsts_behind_a_tls_proxy_that_says_https(tmp_path):
    answers = probe(tmp_path, BEHIND_PROXY="true")
    assert answers["proxy_https"][:2] == [401, "max-age=31536000"]
    status, hsts, location = answers["proxy_http"]
    assert status == 301 and location.startswith("https://") and hsts is None


def test_it_does_not_trust_x_forwarded_proto_without_behind_proxy(tmp_path):
    answers = probe(tmp_path)
    assert answers["proxy_https"][0] == 301


def test_production_refuses_to_run_without_tls(tmp_path):
    env = {**os.environ, **PRODUCTION, "CONSOLE_DATA_DIR": str(tmp_path), "CONSOLE_TLS": "false"}
    code = "import django; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "CONSOLE_TLS=false is refused" in result.stderr


def test_local_development_stays_on_plain_http(tmp_path):
    answers = probe(tmp_path, CONSOLE_PRODUCTION="false", ALLOWED_HOSTS="console.contoso.com")
    assert answers["http"][:2] == [401, None]
    assert answers["cookies_secure"] is False
