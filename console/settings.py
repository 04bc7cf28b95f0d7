"""Settings of the console, read from the environment.

With no configuration at all the console runs on a SQLite file and a broker that needs no server (kombu's
filesystem transport), both in the data folder, so a newcomer sees it work at once. Production sets
CONSOLE_PRODUCTION=true plus DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis), SECRET_KEY and ALLOWED_HOSTS;
the console refuses to start when any of them is missing or insecure and names the variable.
"""

from __future__ import annotations

import secrets
import ssl
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

PRODUCTION = env.bool("CONSOLE_PRODUCTION", default=False)
DATA_DIR = Path(env.str("CONSOLE_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _require(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"CONSOLE_PRODUCTION is on but {name} is not set. Set {name} in the environment "
            "(see README, section Production)."
        )
    return value


def _local_secret_key() -> str:
    """A key generated once and kept in the data folder: stable across restarts, never committed."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    SECRET_KEY = _require("SECRET_KEY")
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak for production: use at least 50 random characters."
        )
    DEBUG = env.bool("DEBUG", default=False)
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off when CONSOLE_PRODUCTION is on: unset DEBUG.")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "CONSOLE_PRODUCTION is on but ALLOWED_HOSTS is not set (a '*' is refused)."
        )
    _database_url = _require("DATABASE_URL")
    if _database_url.startswith("sqlite"):
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production, not SQLite.")
    CELERY_BROKER_URL = _require("CELERY_BROKER_URL")
    if not CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured("CELERY_BROKER_URL must be a redis:// or rediss:// URL in production.")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()
    DEBUG = env.bool("DEBUG", default=True)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
    _database_url = env.str("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'console.sqlite3'}")
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_filters",
    "django_tables2",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "console",
    "devices",
    "policies",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.AuditContextMiddleware",
    "console.middleware.UserPreferencesMiddleware",
    # last, as django-axes requires: turns a locked-out sign-in into console.security.lockout_response
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.shell",
            ],
        },
    },
]

DATABASES = {"default": env.db_url_config(_database_url)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids "database is locked" upgrades.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 30)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sign-in brute force (console.security): django-axes locks out an account, and separately a client address, after
# AXES_FAILURE_LIMIT failures for AXES_COOLOFF_TIME; counted in the database, so every web process sees them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "console.backends.RoleAssignmentBackend",
]


def _claim_map(raw: str, variable: str = "OIDC_ROLE_MAP", target: str = "Role name") -> dict[str, str]:
    """OIDC_ROLE_MAP / OIDC_GROUP_MAP: "claim value=name" pairs separated by ";" (names have spaces, values may have
    commas)."""
    example = _CLAIM_MAP_EXAMPLES[variable]
    mapping: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(";"))):
        value, sep, name = (piece.strip() for piece in entry.partition("="))
        if not sep or not value or not name:
            raise ImproperlyConfigured(
                f"{variable} entry {entry!r} is not 'claim value={target}'. Example: {variable}='{example}'."
            )
        mapping[value] = name
    return mapping


_CLAIM_MAP_EXAMPLES = {
    "OIDC_ROLE_MAP": "console-admins=Global Administrator;secops=Endpoint Security Manager",
    "OIDC_GROUP_MAP": "3f2b7c1e-8d4a-4e5b-9c6f-1a2b3c4d5e6f=Server operators;helpdesk=Helpdesk",
}


# Single sign-on with OpenID Connect (console.sso). On when OIDC_ISSUER is set; the provider's endpoints come from
# its discovery document. Claim values in OIDC_ROLE_CLAIM map to roles (Django groups) through OIDC_ROLE_MAP, and
# values of the OIDC_GROUP_CLAIMS claims to admin groups (role assignment members) through OIDC_GROUP_MAP.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").rstrip("/")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="single sign-on")
OIDC_ROLE_CLAIM = env.str("OIDC_ROLE_CLAIM", default="roles")
OIDC_ROLE_MAP = _claim_map(env.str("OIDC_ROLE_MAP", default=""))
OIDC_GROUP_CLAIMS = [name.strip() for name in env.str("OIDC_GROUP_CLAIMS", default="groups,roles").split(",")]
OIDC_GROUP_CLAIMS = [name for name in OIDC_GROUP_CLAIMS if name]
OIDC_GROUP_MAP = _claim_map(env.str("OIDC_GROUP_MAP", default=""), "OIDC_GROUP_MAP", "Admin group name")
OIDC_LOCAL_PASSWORDS = env.bool("OIDC_LOCAL_PASSWORDS", default=True)
OIDC_RP_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
OIDC_RP_SIGN_ALGO = env.str("OIDC_SIGN_ALGO", default="RS256")
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "sso_callback"
OIDC_TIMEOUT = env.int("OIDC_TIMEOUT_SECONDS", default=10)
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "OIDC_ISSUER is set but OIDC_CLIENT_ID or OIDC_CLIENT_SECRET is not: set both."
    )
if OIDC_ISSUER and not OIDC_ROLE_MAP and not OIDC_GROUP_MAP:
    raise ImproperlyConfigured(
        "OIDC_ISSUER is set but OIDC_ROLE_MAP is empty and so is OIDC_GROUP_MAP, so nobody could sign in with a "
        "role. Example: OIDC_ROLE_MAP='console-admins=Global Administrator;secops=Endpoint Security Manager', or "
        "OIDC_GROUP_MAP='<group object id>=<admin group name>' with a role assignment made to that admin group."
    )
if OIDC_GROUP_MAP and not OIDC_GROUP_CLAIMS:
    raise ImproperlyConfigured(
        "OIDC_GROUP_MAP is set but OIDC_GROUP_CLAIMS names no claim. Example: groups,roles."
    )
if not OIDC_LOCAL_PASSWORDS and not OIDC_ISSUER:
    raise ImproperlyConfigured(
        "OIDC_LOCAL_PASSWORDS=off needs single sign-on: set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, "
        "or nobody could sign in."
    )
if PRODUCTION and OIDC_ISSUER and not OIDC_ISSUER.startswith("https://"):
    raise ImproperlyConfigured("OIDC_ISSUER must be an https:// URL in production.")
if OIDC_ISSUER:
    AUTHENTICATION_BACKENDS.append("console.sso.OIDCBackend")
if not OIDC_LOCAL_PASSWORDS:
    AUTHENTICATION_BACKENDS[AUTHENTICATION_BACKENDS.index("console.backends.RoleAssignmentBackend")] = (
        "console.backends.RoleAssignmentPermissionsBackend"
    )

AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: the account, and the address
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "console.security.client_ip"
AXES_LOCKOUT_CALLABLE = "console.security.lockout_response"
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Security headers. HTTPS-only cookies and HSTS when production says the site is served over TLS.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "console.views.csrf_failure"
# TLS: production is served over HTTPS only - by gunicorn itself (--certfile/--keyfile) or by a proxy that
# terminates TLS and says so in X-Forwarded-Proto (BEHIND_PROXY=true; trust that header only behind a proxy that
# sets it). A request that arrives over plain HTTP is redirected to https:// (a Strict-Transport-Security header
# over HTTP would be ignored by browsers), and every answer over HTTPS carries HSTS (SecurityMiddleware).
_tls = env.bool("CONSOLE_TLS", default=PRODUCTION)
if PRODUCTION and not _tls:
    raise ImproperlyConfigured(
        "CONSOLE_TLS=false is refused when CONSOLE_PRODUCTION is on: serve the console over HTTPS (gunicorn "
        "--certfile/--keyfile, or a TLS proxy with BEHIND_PROXY=true)."
    )
SESSION_COOKIE_SECURE = _tls
CSRF_COOKIE_SECURE = _tls
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_tls)
# Load balancers and scrapers probe these over plain HTTP on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _tls else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Celery. Results are not stored: fire-and-forget tasks ignore them, and anything a person waits for keeps its
# state on our own models (console.models.Job).
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Recovery (see devices/checkins.py, "Leases"): work that a person or a device waits for is recovered from the
# database, never from the broker. Check-in batches hold short leases on their devices that the scheduler takes
# back when they lapse, so a killed worker, a restarted Redis or a restarted PostgreSQL costs at most one lease
# plus one tick. Other tasks are idempotent and acknowledged late: a message that a killed worker had taken is
# delivered again once the visibility timeout passes, which is sized to the longest of those tasks.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_PREFETCH", default=4)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for its broker for as long as it takes
CELERY_TASK_DEFAULT_QUEUE = "default"
# Policy sync is a separate queue that workers consume first: an admin waiting on a button beats the cadence.
CELERY_TASK_ROUTES = {
    "devices.checkins.policy_sync": {"queue": "sync"},
    "devices.checkins.checkin_batch": {"queue": "checkins"},
}
CELERY_IMPORTS = ["devices.checkins", "console.webhooks"]
# Declared here so that a plain `celery -A console worker` (no -Q) consumes every queue; -Q narrows it.
CELERY_TASK_QUEUES = [Queue("sync"), Queue("default"), Queue("checkins")]
CELERY_WORKER_QUEUES = ",".join(q.name for q in CELERY_TASK_QUEUES)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # console.broker: a Redis restart is a reconnect, not a worker exit.
    CELERY_BROKER_TRANSPORT = "console.broker:RedisTransport"
    if CELERY_BROKER_URL.startswith("rediss://"):
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
        "health_check_interval": 10,  # a connection Redis dropped is noticed and replaced, not used
        "socket_keepalive": True,
    }
if CELERY_BROKER_URL.startswith("filesystem://"):
    # console.broker: atomic writes and a quarantine for unreadable messages (kombu's own reader can die on a
    # message that is still being written).
    CELERY_BROKER_TRANSPORT = "console.broker:Transport"
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# Beat stamps its own heartbeat row from its scheduler (console/beat.py), so Home knows beat is up at once.
CELERY_BEAT_SCHEDULER = "console.beat:HeartbeatScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# How long a check-in batch holds its devices before the scheduler may take them back (devices/checkins.py).
CHECKIN_LEASE_SECONDS = env.int("CHECKIN_LEASE_SECONDS", default=60)
# How often beat claims due devices and recovers lost work (devices/checkins.py, "Leases").
CHECKIN_TICK_SECONDS = env.int("CHECKIN_TICK_SECONDS", default=5)
# Batches (devices.checkins.BATCH_SIZE, 500 devices) a tick keeps queued: 15-20 s of one worker's work at most,
# inside the lease, so leases don't lapse while batches wait.
CHECKIN_QUEUE_TARGET = env.int("CHECKIN_QUEUE_TARGET", default=20)
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "heartbeat": {"task": "console.tasks.heartbeat", "schedule": timedelta(seconds=30)},
    "claim-due-checkins": {
        "task": "devices.checkins.claim_due_checkins",
        "schedule": timedelta(seconds=CHECKIN_TICK_SECONDS),
        "options": {"expires": CHECKIN_TICK_SECONDS * 2},
    },
    "prune-checkin-history": {
        "task": "devices.checkins.prune_checkin_history",
        "schedule": timedelta(days=1),
    },
    # devices/tally.py: folds the fleet counts the database keeps (the overview's charts) into one row per key
    "compact-device-counts": {
        "task": "devices.tasks.compact_device_counts",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 60},
    },
    # console/webhooks.py: re-sends due webhook deliveries whose task was lost (a worker restart)
    "retry-due-webhooks": {
        "task": "console.webhooks.retry_due_webhooks",
        "schedule": timedelta(seconds=15),
        "options": {"expires": 30},
    },
}
# The outgoing webhook's backoff: a failed attempt waits base × 2^(attempts-1) seconds; it gives up after the max.
WEBHOOK_BACKOFF_SECONDS = env.float("WEBHOOK_BACKOFF_SECONDS", default=30.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)

# /metrics asks for "Authorization: Bearer <METRICS_TOKEN>" when this is set; without it, anyone may scrape.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# The 90-minute check-in cadence of the seed ("Devices managed by this capability check-in every 90 minutes").
CHECKIN_INTERVAL = timedelta(minutes=env.int("CHECKIN_INTERVAL_MINUTES", default=90))
# Demo-only fault rate of the simulated agent; 0 unless the demo or a test sets it.
AGENT_FAULT_RATE = env.float("AGENT_FAULT_RATE", default=0.0)

DJANGO_TABLES2_TEMPLATE = "console/table.html"
DJANGO_TABLES2_TABLE_ATTRS = {"class": "grid"}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.api.errors.graph_exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": ["console.api.auth.GraphTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["console.api.auth.HasRolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["console.api.parsers.UntrustedJSONParser"],
    "UNAUTHENTICATED_USER": None,
}
# Intune's published per-tenant limits, counted in the cache that every web process shares (console.api.auth).
GRAPH_THROTTLE_RATES = {
    "read": env.str("GRAPH_READ_RATE", default="200/s"),
    "write": env.str("GRAPH_WRITE_RATE", default="20/s"),
}
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# A per-process cache (locmem, dummy) gives every gunicorn worker its own throttle buckets and login-failure
# counters, so four workers let four times the limit through: production needs the shared Redis cache.
if PRODUCTION and not CACHES["default"]["BACKEND"].endswith("RedisCache"):
    raise ImproperlyConfigured(
        "CONSOLE_PRODUCTION is on but CACHE_URL is not a redis:// URL: throttling and login lockout must be "
        "shared by every web process. Set CACHE_URL=redis://redis.internal:6379/1 (see README, Production)."
    )
SPECTACULAR_SETTINGS = {
    "TITLE": "MDE Security Management console API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}, "axes": {"level": "WARNING"}},
}
