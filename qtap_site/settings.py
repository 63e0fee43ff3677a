"""qtap settings, read from the environment (documented in README.md).

Embedded defaults: SQLite in QTAP_DATA_DIR, the in-memory channel layer, one process.
DATABASE_URL and REDIS_URL switch to PostgreSQL and the Redis channel layer.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DATA_DIR = Path(env.str("QTAP_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _generated_secret(filename: str, make: object) -> str:
    """Read a secret from the data directory, creating it (mode 0600) on first use."""
    path = DATA_DIR / filename
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())  # type: ignore[operator]
    return path.read_text().strip()


SECRET_KEY = env.str("QTAP_SECRET_KEY", default="") or _generated_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
DEBUG = env.bool("QTAP_DEBUG", default=False)
ALLOWED_HOSTS = env.list("QTAP_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# Full origins (https://chat.example.com) besides the site's own that may post its forms and open its
# websocket (qtap_site/origins.py): the public origin of a TLS proxy in front of it, say.
QTAP_TRUSTED_ORIGINS = env.list("QTAP_TRUSTED_ORIGINS", default=[])
CSRF_TRUSTED_ORIGINS = [*QTAP_TRUSTED_ORIGINS, *env.list("QTAP_CSRF_TRUSTED_ORIGINS", default=[])]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "axes",
    "providers",
    "qtap_site.chat",
    "qtap_site.search",
    "qtap_site.transfer",
    "qtap_site.budgets",
    "qtap_site.presets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as axes asks: it turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "qtap_site.urls"
ASGI_APPLICATION = "qtap_site.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    }
]

# ---- database --------------------------------------------------------------------------------

_SQLITE_PATH = DATA_DIR / "qtap.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{_SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout: readers never block the writer, writers wait instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Tests use a file too: Channels tests share the database across threads.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_qtap.sqlite3")}
    # Keep the connection: otherwise every database_sync_to_async call opens one (running the
    # PRAGMAs) and closes it, and closing the last connection to a WAL file checkpoints it. Measured:
    # 15% of the server's CPU at 200 concurrent replies.
    DATABASES["default"].setdefault("CONN_MAX_AGE", None)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---- channel layer ---------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # One Redis can serve several qtap sites: the prefix keeps their channels apart.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("QTAP_CHANNEL_PREFIX", default="qtap")},
        }
    }
else:
    # A tab's queue holds up to 1000 frames (the default 100 drops frames silently under a burst).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

# ---- auth, sessions, security ----------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Sign-in throttle (django-axes): covers every authenticate() with a password, the sign-in page and the admin's.
# Its backend comes first so a locked-out sign-in is refused before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
_LOCK_BY_WORDS = {"account": "username", "address": "ip_address"}


def _lockout_parameters(spec: str) -> list[str | list[str]]:
    """``account,address`` (either one locks) or ``account+address`` (only the pair) into axes' parameters."""
    parameters: list[str | list[str]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        words = [word.strip() for word in item.split("+")]
        unknown = [word for word in words if word not in _LOCK_BY_WORDS]
        if unknown:
            raise ImproperlyConfigured(
                f"QTAP_LOGIN_LOCK_BY: unknown {unknown[0]!r} (use account, address, account+address)"
            )
        mapped = [_LOCK_BY_WORDS[word] for word in words]
        parameters.append(mapped[0] if len(mapped) == 1 else mapped)
    if not parameters:
        raise ImproperlyConfigured("QTAP_LOGIN_LOCK_BY is empty")
    return parameters


AXES_FAILURE_LIMIT = env.int("QTAP_LOGIN_FAILURE_LIMIT", default=5)
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("QTAP_LOGIN_FAILURE_LIMIT must be at least 1")
# Minutes from the last failed try; 0 keeps the lock until an operator resets it.
_COOLOFF_MINUTES = env.float("QTAP_LOGIN_COOLOFF_MINUTES", default=15.0)
AXES_COOLOFF_TIME = timedelta(minutes=_COOLOFF_MINUTES) if _COOLOFF_MINUTES > 0 else None
AXES_LOCKOUT_PARAMETERS = _lockout_parameters(env.str("QTAP_LOGIN_LOCK_BY", default="account,address"))
AXES_LOCKOUT_CALLABLE = "qtap_site.signin.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no start-up banner on every manage.py command

# ---- static and uploads ----------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = None  # uploads are served only by views that check the owner

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# ---- qtap ------------------------------------------------------------------------------------

QTAP_PLUGINS_DIR = Path(env.str("QTAP_PLUGINS_DIR", default=str(BASE_DIR / "plugins")))
QTAP_ENCRYPTION_KEYS = env.list("QTAP_ENCRYPTION_KEYS", default=[])
QTAP_MAX_UPLOAD_BYTES = env.int("QTAP_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
QTAP_MAX_FRAME_BYTES = env.int("QTAP_MAX_FRAME_BYTES", default=256 * 1024)
QTAP_BASE_URL_POLICY = env.str("QTAP_BASE_URL_POLICY", default="allow-private")
QTAP_MAX_CONCURRENT_GENERATIONS = env.int("QTAP_MAX_CONCURRENT_GENERATIONS", default=3)
QTAP_CHECKPOINT_INTERVAL = env.float("QTAP_CHECKPOINT_INTERVAL", default=1.0)
# A "streaming" message whose heartbeat (its checkpoint) is older than this has no live process behind it.
QTAP_GENERATION_STALE_SECONDS = env.float("QTAP_GENERATION_STALE_SECONDS", default=30.0)
QTAP_DELTA_COALESCE_MS = env.float("QTAP_DELTA_COALESCE_MS", default=5.0)
# The tool loop: provider turns with tools before the model is asked for its answer without them, the
# characters of one tool result the model is given, and how long a call waits for the user's approval.
QTAP_TOOL_MAX_ROUNDS = env.int("QTAP_TOOL_MAX_ROUNDS", default=8)
QTAP_TOOL_RESULT_MAX_CHARS = env.int("QTAP_TOOL_RESULT_MAX_CHARS", default=50_000)
QTAP_TOOL_APPROVAL_TIMEOUT_SECONDS = env.float("QTAP_TOOL_APPROVAL_TIMEOUT_SECONDS", default=600.0)

DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# ---- logging ---------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "providers.redaction.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("QTAP_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Named so that Django's default handlers on them (a console one when DEBUG, mail_admins, runserver's)
        # are dropped: their records reach the root's handler, through the redaction filter, like all others.
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": [], "level": "INFO"},
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # The MCP SDK's HTTP client logs every request URL at INFO (a URL may carry a token), and its SSE
        # reader an ERROR with a traceback for every call a stop cancels: neither is news to an operator.
        "httpx2": {"level": "WARNING"},
        "mcp.client.streamable_http": {"level": "CRITICAL"},
    },
}
