"""Settings from the environment (prefix PCG_). One frozen object, built once per process."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from schema.limits import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path("./data")


class SettingsError(RuntimeError):
    pass


# name, default, help: the single source for `pcg serve --help` and the README table.
DOCUMENTED = [
    ("PCG_ENV", "development", "`development` or `production`; production refuses to start without PCG_SECRET_KEY."),
    ("PCG_DATA_DIR", "./data", "Where the embedded default keeps its SQLite file and generated secret key."),
    ("PCG_DATABASE_URL", "sqlite://./data/pcg.db", "Tortoise database URL: `sqlite://PATH` or `postgres://user@host:5432/db`."),
    ("PCG_DB_STATEMENT_TIMEOUT", "10", "Seconds one SQL statement may run (PostgreSQL: server-side statement_timeout and asyncpg's command_timeout); beyond it the request answers 503 SERVICE_UNAVAILABLE."),
    ("PCG_DB_CONNECT_TIMEOUT", "5", "Seconds to open a PostgreSQL connection before the request answers 503 SERVICE_UNAVAILABLE."),
    ("PCG_DB_POOL_MIN", "1", "PostgreSQL connections each process keeps open."),
    ("PCG_DB_POOL_MAX", "5", "Most PostgreSQL connections per process (times `--workers` and instances: keep the total under the server's max_connections)."),
    ("PCG_DB_POOL_TIMEOUT", "5", "Seconds a request waits for a free pooled connection before it answers 503 SERVICE_UNAVAILABLE."),
    ("PCG_HEALTH_TIMEOUT", "2", "Seconds each readiness check (database, migrations, broadcast) may take before /api/health/ready reports it and answers 503."),
    ("PCG_BROADCAST_URL", "memory://", "broadcaster URL for live events: `memory://`, `redis://host:6379`, `postgres://...`."),
    ("PCG_SECRET_KEY", "(generated)", "Signs access tokens. Generated into the data dir on first run unless set."),
    ("PCG_ACCESS_TOKEN_TTL", "3600", "Lifetime of a logIn access token, in seconds."),
    ("PCG_EVENT_RETENTION_DAYS", "30", "Board events older than this are pruned; a subscriber resuming from an older cursor gets ResyncRequired."),
    ("PCG_PUBLIC_URL", "http://127.0.0.1:8000", "Base URL printed in instructions (GraphiQL link)."),
    ("PCG_NORA_PROVIDER", "builtin", "NORA's model provider: `builtin` or `openai`."),
    ("PCG_NORA_BASE_URL", "", "OpenAI-compatible endpoint for the `openai` provider."),
    ("PCG_NORA_API_KEY", "", "API key for the `openai` provider."),
    ("PCG_NORA_MODEL", "", "Model name for the `openai` provider."),
    ("PCG_NORA_TIMEOUT", "60", "Seconds NORA waits for the `openai` provider to connect or send the next chunk before the reply fails with PROVIDER_TIMEOUT."),
    ("PCG_NORA_ORPHAN_AFTER", "10", "Seconds without a heartbeat from the instance writing a NORA reply (it beats every 2 s at most) before any instance ends the reply FAILED/INTERRUPTED: the instance crashed or was killed."),
    ("PCG_NORA_QUOTA_FREE", "50000", "NORA tokens per organization per UTC day on the free plan (enterprise is unlimited)."),
    ("PCG_NORA_QUOTA_PRO", "1000000", "NORA tokens per organization per UTC day on the pro plan."),
    ("PCG_MAX_BODY_BYTES", "1048576", "Largest request body; a larger one is refused with 413 PAYLOAD_TOO_LARGE before it is read whole."),
    ("PCG_MAX_TOKENS", "5000", "Most lexical tokens in a GraphQL document (TOKEN_LIMIT_EXCEEDED)."),
    ("PCG_MAX_DOCUMENT_CHARS", "100000", "Longest GraphQL document, in characters (TOKEN_LIMIT_EXCEEDED)."),
    ("PCG_MAX_DEPTH", "12", "Deepest nesting of fields with selections (DEPTH_LIMIT_EXCEEDED)."),
    ("PCG_MAX_ALIASES", "15", "Most aliases in one selection set, fragments merged (ALIAS_LIMIT_EXCEEDED)."),
    ("PCG_MAX_DIRECTIVES", "50", "Most directives in a document (DIRECTIVE_LIMIT_EXCEEDED)."),
    ("PCG_MAX_ROOT_FIELDS", "20", "Most root fields in one operation (ROOT_FIELD_LIMIT_EXCEEDED)."),
    ("PCG_MAX_COST", "10000", "Highest static cost of one operation, in points (MAX_COST_EXCEEDED); see Security."),
    ("PCG_CORS_ORIGINS", "", "Comma-separated origins allowed to call the API from a browser (HTTP and websocket); empty: same origin only."),
    ("PCG_GRAPHIQL", "1 (0 in production)", "Serve the GraphiQL explorer at GET /graphql."),
    ("PCG_HSTS", "0", "Send Strict-Transport-Security (set to 1 when the server is reached over TLS)."),
    ("PCG_TRUSTED_DOCUMENTS", "off", "`enforce`: only documents added with `pcg documents add` run (DOCUMENT_NOT_TRUSTED otherwise); `log`: run all, log unlisted ones; `off`."),
    ("PCG_TRUSTED_PROXIES", "", "Comma-separated IPs or networks of reverse proxies whose X-Forwarded-For/-Proto are believed (client IP for rate limits and audit); empty: none."),
    ("PCG_RATE_LIMIT", "1", "`1` charges every GraphQL operation's cost to its caller's budget of points per minute; `0` turns the budget off (login, sign-up and socket limits have their own settings)."),
    ("PCG_RATE_LIMIT_FREE", "100", "Points per minute (1 per request plus 1 per 100 objects of its cost) for a user or API key whose best organization plan is free (or who has none)."),
    ("PCG_RATE_LIMIT_PRO", "500", "Points per minute on the pro plan."),
    ("PCG_RATE_LIMIT_ENTERPRISE", "2000", "Points per minute on the enterprise plan."),
    ("PCG_RATE_LIMIT_ANONYMOUS", "60", "Points per minute per IP address for requests without a credential."),
    ("PCG_RATE_LIMIT_LOGIN_EMAIL", "5", "Failed logIns per email per 15 minutes before RATE_LIMITED (a success clears the count); 0 turns it off."),
    ("PCG_RATE_LIMIT_LOGIN_IP", "50", "Failed logIns per IP address per 15 minutes before RATE_LIMITED; 0 turns it off."),
    ("PCG_RATE_LIMIT_SIGNUP_IP", "10", "signUp attempts per IP address per hour; 0 turns it off."),
    ("PCG_RATE_LIMIT_SOCKETS_PER_IP", "50", "Open websockets per IP address on one instance; beyond it the handshake is closed with 1013 (try again later). 0 turns it off."),
    ("PCG_METRICS", "loopback", "Who may read /metrics (Prometheus): `off`, `loopback` (peers 127.0.0.1 and ::1 only) or `token:SECRET` (sent as `Authorization: Bearer SECRET`)."),
    ("PCG_LOG_FORMAT", "text", "`text` (readable lines) or `json` (one JSON object per line: time, level, logger, message, requestId, userId, orgId, operation, durationMs, statements, cost, outcome)."),
    ("PCG_LOG_LEVEL", "info", "Log level of `pcg serve` and its workers (`--log-level` sets it)."),
    ("PCG_OTEL_ENDPOINT", "", "OpenTelemetry collector base URL (OTLP over HTTP, e.g. `http://127.0.0.1:4318`): one span per GraphQL operation is sent to its /v1/traces. Needs `pip install 'pcg-graphql[otel]'`."),
    ("PCG_SLOW_OPERATION_MS", "500", "A query or mutation that takes longer logs one warning with its name, duration and statement count."),
    ("PCG_COMPILED_EXECUTION", "1", "`1` runs validated operations from cached compiled plans (the same answers as graphql-core, faster); `0` runs every operation on graphql-core's executor."),
]

# PCG_* name -> (Limits field or Settings field, smallest accepted value)
_LIMIT_SETTINGS = {
    "PCG_MAX_TOKENS": ("max_tokens", 100),
    "PCG_MAX_DOCUMENT_CHARS": ("max_document_chars", 1000),
    "PCG_MAX_DEPTH": ("max_depth", 1),
    "PCG_MAX_ALIASES": ("max_aliases", 0),
    "PCG_MAX_DIRECTIVES": ("max_directives", 0),
    "PCG_MAX_ROOT_FIELDS": ("max_root_fields", 1),
    "PCG_MAX_COST": ("max_cost", 1),
}


def _whole(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SettingsError(f"{name} must be a whole number of at least {minimum}")
    return int(raw)


def _proxies(raw: str) -> tuple[str, ...]:
    import ipaddress

    proxies = tuple(p.strip() for p in raw.split(",") if p.strip())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(f"PCG_TRUSTED_PROXIES: {proxy!r} is not an IP address or network") from None
    return proxies


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1 or 0")

# PCG_RATE_LIMIT_* name -> Settings field; each a non-negative whole number.
_RATE_LIMIT_NUMBERS = {
    "PCG_RATE_LIMIT_FREE": "rate_limit_free",
    "PCG_RATE_LIMIT_PRO": "rate_limit_pro",
    "PCG_RATE_LIMIT_ENTERPRISE": "rate_limit_enterprise",
    "PCG_RATE_LIMIT_ANONYMOUS": "rate_limit_anonymous",
    "PCG_RATE_LIMIT_LOGIN_EMAIL": "rate_limit_login_email",
    "PCG_RATE_LIMIT_LOGIN_IP": "rate_limit_login_ip",
    "PCG_RATE_LIMIT_SIGNUP_IP": "rate_limit_signup_ip",
    "PCG_RATE_LIMIT_SOCKETS_PER_IP": "rate_limit_sockets_per_ip",
}


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = "sqlite://./data/pcg.db"
    broadcast_url: str = "memory://"
    secret_key: str = ""
    access_token_ttl: int = 3600
    event_retention_days: int = 30
    public_url: str = "http://127.0.0.1:8000"
    migrations_dir: Path = PROJECT_ROOT / "migrations"
    nora_provider: str = "builtin"
    nora_base_url: str = ""
    nora_api_key: str = ""
    nora_model: str = ""
    nora_timeout: float = 60.0
    nora_orphan_after: int = 10
    nora_quota_free: int = 50_000
    nora_quota_pro: int = 1_000_000
    limits: Limits = field(default_factory=Limits)
    max_body_bytes: int = 1_048_576
    cors_origins: tuple[str, ...] = ()
    # None: on, except in production.
    graphiql: bool | None = None
    hsts: bool = False
    trusted_proxies: tuple[str, ...] = ()
    trusted_documents: str = "off"
    rate_limit: bool = True
    rate_limit_free: int = 100
    rate_limit_pro: int = 500
    rate_limit_enterprise: int = 2_000
    rate_limit_anonymous: int = 60
    rate_limit_login_email: int = 5
    rate_limit_login_ip: int = 50
    rate_limit_signup_ip: int = 10
    rate_limit_sockets_per_ip: int = 50
    db_statement_timeout: int = 10
    db_connect_timeout: int = 5
    db_pool_min: int = 1
    db_pool_max: int = 5
    db_pool_timeout: int = 5
    health_timeout: int = 2
    # off | loopback | token:<secret> (server/metrics.py)
    metrics: str = "loopback"
    log_format: str = "text"
    slow_operation_ms: int = 500
    otel_endpoint: str = ""
    # schema/execution: compiled plans for validated operations (graphql-core when off).
    compiled_execution: bool = True

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.is_production) if self.graphiql is None else self.graphiql

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("PCG_DATA_DIR", str(DEFAULT_DATA_DIR)))
        database_url = env.get("PCG_DATABASE_URL") or f"sqlite://{data_dir / 'pcg.db'}"
        ttl = env.get("PCG_ACCESS_TOKEN_TTL", "3600")
        if not ttl.isdigit() or int(ttl) <= 0:
            raise SettingsError("PCG_ACCESS_TOKEN_TTL must be a positive number of seconds")
        retention = env.get("PCG_EVENT_RETENTION_DAYS", "30")
        if not retention.isdigit() or int(retention) <= 0:
            raise SettingsError("PCG_EVENT_RETENTION_DAYS must be a positive number of days")
        nora_numbers = {}
        for name, key in (
            ("PCG_NORA_TIMEOUT", "nora_timeout"),
            ("PCG_NORA_ORPHAN_AFTER", "nora_orphan_after"),
            ("PCG_NORA_QUOTA_FREE", "nora_quota_free"),
            ("PCG_NORA_QUOTA_PRO", "nora_quota_pro"),
        ):
            if name in env:
                raw = env[name]
                positive = key in ("nora_timeout", "nora_orphan_after")
                if not raw.isdigit() or (positive and int(raw) <= 0):
                    raise SettingsError(f"{name} must be a {'positive' if positive else 'non-negative'} whole number")
                nora_numbers[key] = int(raw)
        rate_limits: dict = {}
        for name, key in _RATE_LIMIT_NUMBERS.items():
            if name in env:
                if not env[name].isdigit():
                    raise SettingsError(f"{name} must be a non-negative whole number")
                rate_limits[key] = int(env[name])
        if env.get("PCG_RATE_LIMIT", "1") not in ("0", "1"):
            raise SettingsError("PCG_RATE_LIMIT must be 1 (on) or 0 (off)")
        settings = cls(
            env=env.get("PCG_ENV", "development"),
            data_dir=data_dir,
            database_url=database_url,
            broadcast_url=env.get("PCG_BROADCAST_URL", "memory://"),
            secret_key=env.get("PCG_SECRET_KEY", ""),
            access_token_ttl=int(ttl),
            event_retention_days=int(retention),
            public_url=env.get("PCG_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            nora_provider=env.get("PCG_NORA_PROVIDER", "builtin"),
            nora_base_url=env.get("PCG_NORA_BASE_URL", ""),
            nora_api_key=env.get("PCG_NORA_API_KEY", ""),
            nora_model=env.get("PCG_NORA_MODEL", ""),
            rate_limit=env.get("PCG_RATE_LIMIT", "1") == "1",
            **nora_numbers,
            limits=Limits(**{
                key: _whole(env, name, getattr(Limits, key), minimum)
                for name, (key, minimum) in _LIMIT_SETTINGS.items()
            }),
            max_body_bytes=_whole(env, "PCG_MAX_BODY_BYTES", 1_048_576, 1024),
            cors_origins=tuple(
                o.strip().rstrip("/") for o in env.get("PCG_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            graphiql=_flag(env, "PCG_GRAPHIQL", None) if env.get("PCG_GRAPHIQL") else None,
            hsts=_flag(env, "PCG_HSTS", False),
            trusted_proxies=_proxies(env.get("PCG_TRUSTED_PROXIES", "")),
            trusted_documents=env.get("PCG_TRUSTED_DOCUMENTS", "off") or "off",
            db_statement_timeout=_whole(env, "PCG_DB_STATEMENT_TIMEOUT", 10, 1),
            db_connect_timeout=_whole(env, "PCG_DB_CONNECT_TIMEOUT", 5, 1),
            db_pool_min=_whole(env, "PCG_DB_POOL_MIN", 1, 0),
            db_pool_max=_whole(env, "PCG_DB_POOL_MAX", 5, 1),
            db_pool_timeout=_whole(env, "PCG_DB_POOL_TIMEOUT", 5, 1),
            health_timeout=_whole(env, "PCG_HEALTH_TIMEOUT", 2, 1),
            **rate_limits,
            metrics=env.get("PCG_METRICS", "loopback").strip() or "loopback",
            log_format=env.get("PCG_LOG_FORMAT", "text").strip().lower() or "text",
            slow_operation_ms=_whole(env, "PCG_SLOW_OPERATION_MS", 500, 0),
            otel_endpoint=env.get("PCG_OTEL_ENDPOINT", "").strip(),
            compiled_execution=_flag(env, "PCG_COMPILED_EXECUTION", True),
        )
        if settings.trusted_documents not in ("off", "log", "enforce"):
            raise SettingsError("PCG_TRUSTED_DOCUMENTS must be off, log or enforce")
        if settings.metrics not in ("off", "loopback") and not (
            settings.metrics.startswith("token:") and len(settings.metrics) >= len("token:") + 16
        ):
            raise SettingsError("PCG_METRICS must be off, loopback or token:SECRET (a secret of 16+ characters)")
        if settings.log_format not in ("text", "json"):
            raise SettingsError("PCG_LOG_FORMAT must be text or json")
        if env.get("PCG_LOG_LEVEL", "info").lower() not in ("critical", "error", "warning", "info", "debug"):
            raise SettingsError("PCG_LOG_LEVEL must be critical, error, warning, info or debug")
        if settings.nora_provider not in ("builtin", "openai"):
            raise SettingsError(f"PCG_NORA_PROVIDER must be builtin or openai, not {settings.nora_provider!r}")
        if settings.db_pool_min > settings.db_pool_max:
            raise SettingsError("PCG_DB_POOL_MIN must not exceed PCG_DB_POOL_MAX")
        if settings.env not in ("development", "production", "test"):
            raise SettingsError(f"PCG_ENV must be development, production or test, not {settings.env!r}")
        return settings

    def with_secret(self) -> Settings:
        """Return settings with a secret key: the explicit one, or one kept in the data dir.

        Production never falls back to a generated key: a key that silently changes with the
        data dir would log everyone out, or worse, be shared by accident.
        """
        if self.secret_key:
            if len(self.secret_key) < 32:
                raise SettingsError("PCG_SECRET_KEY must be at least 32 characters")
            return self
        if self.is_production:
            raise SettingsError("PCG_ENV=production requires an explicit PCG_SECRET_KEY")
        key_file = self.data_dir / "secret_key"
        if key_file.exists():
            return replace(self, secret_key=key_file.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return replace(self, secret_key=key)
