"""Configuration classes. This module is the only reader of ``os.environ``.

``MUSTER_ENV`` picks the class (``development``, ``testing``, ``production``);
production is the default so that a forgotten variable fails safe: it refuses to
start without a real ``SECRET_KEY``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# A well-known key: good enough to sign a developer's local session, never production.
DEFAULT_SECRET_KEY = "muster-development-key-not-secret"
# Where the database lives when DATABASE_URL is unset: fine for a developer, and refused
# in production unless asked for (MUSTER_ALLOW_SQLITE=1), so a forgotten DATABASE_URL
# does not quietly start a fresh, empty database on one server's disk.
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'muster.db'}"


def normalise_database_url(url: str) -> str:
    """Point ``postgres://`` and ``postgresql://`` URLs at the psycopg 3 driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _env(name: str) -> str:
    """``MUSTER_<name>``, else ``<name>`` (the mail settings' common spelling), stripped."""
    return (os.environ.get(f"MUSTER_{name}") or os.environ.get(name) or "").strip()


def proxy_count_setting() -> tuple[str | None, str | None]:
    """The trusted-proxy count and, when it cannot be believed, why not.

    ``MUSTER_PROXY_COUNT`` is the documented name; ``MUSTER_PROXIES``, its older
    spelling, still works. Two different answers are a mistake to stop on, not a choice
    to make quietly: one of them would leave forged client addresses believed (or real
    ones ignored). ``None`` as the value means neither is set."""
    current = os.environ.get("MUSTER_PROXY_COUNT", "").strip()
    older = os.environ.get("MUSTER_PROXIES", "").strip()
    if current and older and current != older:
        return None, (f"MUSTER_PROXY_COUNT={current!r} and its older name "
                      f"MUSTER_PROXIES={older!r} disagree; set only MUSTER_PROXY_COUNT.")
    value = current or older or None
    if value is not None and not value.isdigit():
        name = "MUSTER_PROXY_COUNT" if current else "MUSTER_PROXIES"
        return value, f"{name} must be a whole number of at least 0, not {value!r}"
    return value, None


def log_format_setting(environment: str) -> str:
    """``MUSTER_LOG_FORMAT``: JSON lines by default in production (one object a line for
    a log collector), readable text elsewhere. Checked in ``lessons.logs``."""
    default = "json" if environment == "production" else "text"
    return os.environ.get("MUSTER_LOG_FORMAT", "").strip().lower() or default


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    # Pooled connections are tested at checkout, so one that died while the database
    # was away is replaced instead of failing the request that draws it.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Seconds an SQLite writer waits for another's lock before the request gets a 503.
    SQLITE_BUSY_TIMEOUT = 10.0
    # Seconds a 503 (database unreachable or busy) asks clients to wait (Retry-After).
    UNAVAILABLE_RETRY_AFTER = 10
    INDEX_DIR = os.environ.get("MUSTER_INDEX_DIR", str(INSTANCE_DIR / "index"))
    # Seconds to wait for the index's single writer before leaving a change queued.
    SEARCH_WRITER_TIMEOUT = 10.0
    # Processes that build the index in `flask search reindex` (capped at the CPU count).
    SEARCH_REINDEX_PROCS = os.environ.get("MUSTER_REINDEX_PROCS", "2")
    # Serving processes read each index segment's facet data once, in the background,
    # at their first request, so no user waits for it (tests turn it off).
    SEARCH_WARM_UP = True
    # Who applies the change log to this host's index: "background" (this host's
    # indexer: `flask search worker`, else a standby thread in one serving process; a
    # request only commits) or "inline" (each request applies it after its commit).
    SEARCH_INDEXER = os.environ.get("MUSTER_SEARCH_INDEXER", "background").strip().lower()
    # Seconds between the background indexer's looks at the log (a change is searchable
    # on every host within about this long, plus the time to apply it).
    SEARCH_POLL_SECONDS = 0.2
    # Seconds a user's search waits for this host's index to hold their own last change.
    SEARCH_FRESHNESS_WAIT = 2.0
    # An index (a host) not seen for this many hours is forgotten: the log is pruned
    # without it, and it rebuilds if it comes back.
    SEARCH_INDEX_FORGET_HOURS = os.environ.get("MUSTER_INDEX_FORGET_HOURS", "168")
    # Marking labels offered on lessons; the first is the default.
    CLASSIFICATIONS = _csv(os.environ.get("MUSTER_CLASSIFICATIONS", "UNCLASSIFIED"))
    # Nations whose analysts may validate, reject or confirm the outcome of a lesson they
    # wrote themselves (a nation with a single analyst); each such review is audited as
    # a self-review. Empty: nobody reviews their own lesson.
    SELF_REVIEW_NATIONS = [code.upper() for code in
                           _csv(os.environ.get("MUSTER_SELF_REVIEW_NATIONS", ""))]
    # Werkzeug's scrypt: memory-hard and salted. Tests lower the cost (see TestingConfig).
    PASSWORD_HASH_METHOD = "scrypt"
    LESSONS_PER_PAGE = 20
    # Files attached to lessons: kept outside the web root under names of their own
    # (never the uploader's), each at most FILE_MAX_MB megabytes. Backups carry them.
    FILES_DIR = os.environ.get("MUSTER_FILES_DIR", str(INSTANCE_DIR / "files"))
    FILE_MAX_MB = os.environ.get("MUSTER_FILE_MAX_MB", "20")
    # After-action reports uploaded to draft lessons from: at most AAR_MAX_MB megabytes.
    AAR_MAX_MB = os.environ.get("MUSTER_AAR_MAX_MB", "10")
    # Eight 50,000-character fields of multi-byte text, percent-encoded, fit well inside.
    MAX_CONTENT_LENGTH = 8 * 1024 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead of a clock
    DEMO_DATA_ALLOWED = True
    # Sessions end after this long without a request, and this long after log-in whatever
    # happens (README, Security). Whole numbers, checked at start (lessons.sessions).
    SESSION_IDLE_MINUTES = os.environ.get("MUSTER_SESSION_IDLE_MINUTES", "480")
    SESSION_MAX_HOURS = os.environ.get("MUSTER_SESSION_MAX_HOURS", "24")
    # How many reverse proxies in front of the app append to X-Forwarded-For (and report
    # the scheme); 0 believes no such header, and the client address is the connection's.
    # MUSTER_PROXY_COUNT, or its older name MUSTER_PROXIES; production requires one.
    PROXY_COUNT_GIVEN, PROXY_SETTING_ERROR = proxy_count_setting()
    PROXIES = PROXY_COUNT_GIVEN or "0"
    LOG_FORMAT = log_format_setting("development")
    # Throttling (Flask-Limiter): counters in Redis when REDIS_URL is set, so every
    # worker shares them; otherwise in each process's memory.
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL") or "memory://"
    RATELIMIT_KEY_PREFIX = "muster"
    # Limits in Flask-Limiter's notation ("30 per minute", "5/second;100/hour").
    LOGIN_RATE_LIMIT = os.environ.get("MUSTER_LOGIN_RATE_LIMIT", "30 per minute")
    API_RATE_LIMIT = os.environ.get("MUSTER_API_RATE_LIMIT", "600 per minute")
    IMPORT_RATE_LIMIT = os.environ.get("MUSTER_IMPORT_RATE_LIMIT", "30 per hour")
    EXPORT_RATE_LIMIT = os.environ.get("MUSTER_EXPORT_RATE_LIMIT", "120 per hour")
    # After this many failed log-ins an account waits LOGIN_BACKOFF_SECONDS, doubled at
    # each further failure up to LOGIN_BACKOFF_MAX_SECONDS.
    LOGIN_FAILURES_ALLOWED = 5
    LOGIN_BACKOFF_SECONDS = 30
    LOGIN_BACKOFF_MAX_SECONDS = 15 * 60
    # Notifications by e-mail (plain SMTP, `flask notify send`): none without a server.
    MAIL_SERVER = _env("MAIL_SERVER")
    MAIL_PORT = _env("MAIL_PORT") or "25"
    MAIL_USE_STARTTLS = _env("MAIL_USE_STARTTLS").lower() in ("1", "true", "yes", "on")
    MAIL_USERNAME = _env("MAIL_USERNAME")
    MAIL_PASSWORD = _env("MAIL_PASSWORD")
    MAIL_FROM = _env("MAIL_FROM") or "muster@localhost"
    MAIL_TIMEOUT = 10.0
    # Where e-mails link to (e.g. https://muster.example); no links without it.
    BASE_URL = os.environ.get("MUSTER_BASE_URL", "").strip().rstrip("/")
    # A failed e-mail is tried again after NOTIFY_RETRY_SECONDS, doubled each time, at
    # most NOTIFY_MAX_ATTEMPTS times; digests go at most once per NOTIFY_DIGEST_HOURS.
    NOTIFY_RETRY_SECONDS = 60
    NOTIFY_MAX_ATTEMPTS = 5
    NOTIFY_DIGEST_HOURS = 24
    # Federation (`flask federation`, README): this instance's name and nation as peers
    # know it, e.g. GBR-army and GBR; both empty until federation is wanted. The signing
    # key lives in FEDERATION_DIR, never exported. Checked at start (lessons.federation).
    INSTANCE_NAME = os.environ.get("MUSTER_INSTANCE_NAME", "").strip()
    INSTANCE_NATION = os.environ.get("MUSTER_INSTANCE_NATION", "").strip().upper()
    FEDERATION_DIR = os.environ.get("MUSTER_FEDERATION_DIR", str(INSTANCE_DIR / "federation"))


    @classmethod
    def check(cls) -> None:
        """Refuse settings that contradict each other, in every environment."""
        if cls.PROXY_SETTING_ERROR:
            raise RuntimeError(cls.PROXY_SETTING_ERROR)
        if cls.LOG_FORMAT not in ("json", "text"):
            raise RuntimeError(f"MUSTER_LOG_FORMAT must be json or text, not {cls.LOG_FORMAT!r}")
        if cls.SEARCH_INDEXER not in ("background", "inline"):
            raise RuntimeError("MUSTER_SEARCH_INDEXER must be background or inline, not "
                               f"{cls.SEARCH_INDEXER!r}")
        try:
            hours = float(cls.SEARCH_INDEX_FORGET_HOURS)
        except ValueError:
            hours = -1
        if not 1 <= hours <= 24 * 365:
            raise RuntimeError("MUSTER_INDEX_FORGET_HOURS must be a number of hours from 1 "
                               f"to 8760, not {cls.SEARCH_INDEX_FORGET_HOURS!r}")


class DevelopmentConfig(Config):
    DEBUG = False  # `flask run --debug` when wanted; never a debugger on by default


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing"
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        os.environ.get("TEST_DATABASE_URL", "sqlite://")
    )
    # Most tests post forms directly; tests/test_csrf.py and the browser test turn it on.
    WTF_CSRF_ENABLED = False
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
    SEARCH_WRITER_TIMEOUT = 1.0
    SEARCH_WARM_UP = False
    # Never the instance folder's files: a test that restores a backup replaces the
    # folder. Tests give each app its own (tests/conftest.py); this is for the others.
    FILES_DIR = str(Path(tempfile.gettempdir()) / f"muster-test-files-{os.getpid()}")
    # Each request applies its own changes, so a test reads them at once; the tests of
    # background indexing (tests/test_hosts.py) turn it on for their own apps.
    SEARCH_INDEXER = "inline"
    # The suite logs in and calls the API far faster than anyone would; the throttling
    # tests lower these for their own app.
    RATELIMIT_STORAGE_URI = "memory://"
    LOGIN_RATE_LIMIT = API_RATE_LIMIT = "100000 per minute"
    IMPORT_RATE_LIMIT = EXPORT_RATE_LIMIT = "100000 per minute"
    LOGIN_FAILURES_ALLOWED = 1000
    # No e-mail unless a test starts its own SMTP server and names it.
    MAIL_SERVER = ""


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    DEMO_DATA_ALLOWED = False
    ALLOW_SQLITE = os.environ.get("MUSTER_ALLOW_SQLITE", "") == "1"
    LOG_FORMAT = log_format_setting("production")

    @classmethod
    def check(cls) -> None:
        super().check()
        if not cls.SECRET_KEY or cls.SECRET_KEY == DEFAULT_SECRET_KEY or len(cls.SECRET_KEY) < 16:
            raise RuntimeError(
                "SECRET_KEY must be set to a random value of at least 16 characters in "
                "production (e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
            )
        if cls.SQLALCHEMY_DATABASE_URI == DEFAULT_DATABASE_URL and not cls.ALLOW_SQLITE:
            raise RuntimeError(
                "DATABASE_URL must be set in production (e.g. "
                "DATABASE_URL=postgresql://muster@db.example/muster); set "
                "MUSTER_ALLOW_SQLITE=1 to use the SQLite file in instance/ instead."
            )
        if cls.PROXY_COUNT_GIVEN is None:
            # Guessing either way is wrong somewhere: 0 behind a proxy throttles and binds
            # sessions to the proxy's address (and drops HSTS); 1 without one believes
            # any client's forged X-Forwarded-For.
            raise RuntimeError(
                "MUSTER_PROXY_COUNT must be set in production: the number of reverse "
                "proxies in front of the app (e.g. MUSTER_PROXY_COUNT=1 behind one load "
                "balancer), or 0 when clients connect directly."
            )


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


@dataclass(frozen=True)
class ServerSettings:
    """What ``gunicorn.conf.py`` gives gunicorn, read here like every other setting."""

    bind: str
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    forwarded_allow_ips: str
    log_format: str


def server_settings() -> ServerSettings:
    """The production server's settings from the environment (see README, Configuration);
    a malformed number is refused by name, before any worker starts."""
    port = _whole("PORT", 8000)
    return ServerSettings(
        bind=os.environ.get("MUSTER_BIND") or f"127.0.0.1:{port}",
        workers=_whole("MUSTER_WORKERS", 2 * (os.cpu_count() or 1) + 1),
        threads=_whole("MUSTER_THREADS", 4),
        timeout=_whole("MUSTER_TIMEOUT", 30),
        graceful_timeout=_whole("MUSTER_GRACEFUL_TIMEOUT", 30),
        keepalive=_whole("MUSTER_KEEPALIVE", 5),
        # gunicorn believes X-Forwarded-Proto from these; the app believes X-Forwarded-For
        # only as far as MUSTER_PROXY_COUNT says (Config.PROXIES).
        forwarded_allow_ips=os.environ.get("MUSTER_FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        log_format=get_config().LOG_FORMAT,
    )


def _whole(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise RuntimeError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def check_environment() -> None:
    """Exit with the reason, and no traceback, when the selected environment cannot
    start (``make serve`` runs this first: ``python config.py``)."""
    try:
        get_config().check()
        server_settings()
    except RuntimeError as error:
        raise SystemExit(f"error: {error}") from None


def get_config(name: str | None = None) -> type[Config]:
    """Return the config class named by ``name`` or ``MUSTER_ENV`` (default production)."""
    name = name or os.environ.get("MUSTER_ENV", "production")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(
            f"MUSTER_ENV={name!r} is not one of {', '.join(sorted(CONFIGS))}"
        ) from None


if __name__ == "__main__":
    check_environment()
