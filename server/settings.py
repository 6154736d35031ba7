"""Settings from the environment (prefix PCG_). One frozen object, built once per process.

Each setting is declared once below, as a field of `Settings`: its type, default, validation
and description. `pcg serve --help` and the README's Settings table are generated from those
declarations (`pcg settings --markdown`; tests/test_settings.py checks the README).

`Settings.from_env()` reads the environment; `Settings(field=value, ...)` reads nothing but its
arguments (tests build their settings that way, whatever the shell exports). Both validate the
same way, and a bad value raises `SettingsError` with one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import textwrap
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from schema.limits import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path("./data")
PREFIX = "PCG_"


class SettingsError(RuntimeError):
    pass


# -- value types: each parses the environment's text and checks it, with a message that reads
# after the variable's name ("PCG_MAX_DEPTH must be a whole number of at least 1").


def _whole(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            value = value.strip()
            # ASCII digits only ("²".isdigit() is true), and few enough for int() to take.
            if value.isascii() and value.isdigit() and len(value) <= 18:
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be a whole number of at least {minimum}")
        return value

    return parse


def at_least(minimum: int) -> BeforeValidator:
    """`Annotated[int, at_least(1)]`: a whole number, at least `minimum`."""
    return BeforeValidator(_whole(minimum))


def _seconds(value: Any) -> float:
    try:
        seconds = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        seconds = None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
        raise ValueError("must be a positive number of seconds")
    return float(seconds)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(strict: bool) -> Callable[[Any], bool]:
    """`1`/`0`; unless strict, also true/yes/on and false/no/off."""

    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in (("1",) if strict else _TRUE):
            return True
        if text in (("0",) if strict else _FALSE):
            return False
        raise ValueError("must be 1 (on) or 0 (off)")

    return parse


Flag = Annotated[bool, BeforeValidator(_flag(strict=False))]
StrictFlag = Annotated[bool, BeforeValidator(_flag(strict=True))]


def _choice(*choices: str, lower: bool = False) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.lower() if lower else text
        if text not in choices:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            raise ValueError(f"must be {listed}, not {str(value)!r}")
        return text

    return parse


def _comma_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


def _origins(value: Any) -> tuple[str, ...]:
    return tuple(origin.rstrip("/") for origin in _comma_list(value))


def _networks(value: Any) -> tuple[str, ...]:
    proxies = _comma_list(value)
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"must list IP addresses or networks: {proxy!r} is neither") from None
    return proxies


def _metrics(value: Any) -> str:
    text = str(value).strip() or "loopback"
    if text in ("off", "loopback") or (text.startswith("token:") and len(text) >= len("token:") + 16):
        return text
    # The value may hold a secret: it is not repeated.
    raise ValueError("must be off, loopback or token:SECRET (a secret of 16+ characters)")


def _smtp_url(value: Any) -> str:
    text = str(value).strip()
    if text:
        from resolvers.email.transport import SmtpConfig

        SmtpConfig.parse(text)  # its messages never repeat the URL, which may hold a password
    return text


def _mail_from(value: Any) -> str:
    from resolvers.email.transport import parse_sender

    text = str(value).strip() or "PCG <no-reply@localhost>"
    parse_sender(text)
    return text


def _default(value: Any, default: str) -> str:
    return str(value).strip() or default


def setting(default: Any, description: str, *, shown: str | None = None, env: bool = True) -> Any:
    """A setting's declaration. `shown` is the default as documented (Markdown) when the value
    itself would mislead (a key generated on first run); `env=False` keeps a field out of the
    environment (set only in code)."""
    extra: dict[str, Any] = {"env": env}
    if shown is not None:
        extra["shown"] = shown
    return Field(default, description=description, json_schema_extra=extra)


# The environment `from_env()` reads; None while a `Settings(...)` reads only its arguments.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("pcg_settings_environ", default=None)

LIMIT_FIELDS = tuple(Limits.__dataclass_fields__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        extra="forbid",
        # PCG_X= (empty) means the default, as if unset.
        env_ignore_empty=True,
        # Lists are comma-separated text, not JSON.
        enable_decoding=False,
        validate_default=True,
    )

    env: Annotated[Literal["development", "production", "test"], BeforeValidator(
        _choice("development", "production", "test"))] = setting(
        "development",
        "`development` or `production`; production refuses to start without `PCG_SECRET_KEY`.")
    data_dir: Path = setting(
        DEFAULT_DATA_DIR, "Where the embedded default keeps its SQLite file and generated secret key.",
        shown="`./data`")
    database_url: str = setting(
        "", "Tortoise database URL: `sqlite://PATH` or `postgres://user@host:5432/db`.",
        shown="`sqlite://./data/pcg.db`")
    db_statement_timeout: Annotated[int, at_least(1)] = setting(
        10, "Seconds one SQL statement may run on PostgreSQL (server-side `statement_timeout`, and "
        "asyncpg's `command_timeout` one second later for a server that stopped answering); beyond "
        "it the request answers 503 `SERVICE_UNAVAILABLE`. Migrations run without it.")
    db_connect_timeout: Annotated[int, at_least(1)] = setting(
        5, "Seconds to open a PostgreSQL connection; then 503 `SERVICE_UNAVAILABLE`.")
    db_pool_min: Annotated[int, at_least(0)] = setting(1, "PostgreSQL connections each process keeps open.")
    db_pool_max: Annotated[int, at_least(1)] = setting(
        5, "Most PostgreSQL connections per process; times `--workers` and instances, keep the "
        "total under the server's `max_connections`.")
    db_pool_timeout: Annotated[int, at_least(1)] = setting(
        5, "Seconds a request waits for a free pooled connection; then 503 `SERVICE_UNAVAILABLE`.")
    health_timeout: Annotated[int, at_least(1)] = setting(
        2, "Seconds each readiness check (database, migrations, broadcast) may take; a check over it "
        "reports `timeout` and `/api/health/ready` answers 503.")
    broadcast_url: Annotated[str, BeforeValidator(lambda v: _default(v, "memory://"))] = setting(
        "memory://",
        "broadcaster URL for live events: `memory://`, `redis://host:6379`, `postgres://...`.")
    secret_key: str = setting(
        "", "Signs access tokens (at least 32 characters). Generated into the data dir on first run "
        "unless set.", shown="(generated)")
    access_token_ttl: Annotated[int, at_least(1)] = setting(
        900, "Lifetime of an access token from `logIn` or `refreshToken`, in seconds "
        "(never past its session's end); clients renew it with the refresh token.")
    session_idle_timeout: Annotated[int, at_least(60)] = setting(
        14 * 24 * 3600, "Seconds a session lives without a refresh (or the login): then "
        "`refreshToken` answers `SESSION_EXPIRED`. Enterprise organizations may set less for their "
        "members (`updateSessionPolicy`).")
    session_max_age: Annotated[int, at_least(60)] = setting(
        30 * 24 * 3600, "Seconds a session lives at most from its login, refreshed or not. "
        "Enterprise organizations may set less for their members.")
    event_retention_days: Annotated[int, at_least(1)] = setting(
        30, "Board events older than this are pruned; a subscriber resuming from an older cursor "
        "first receives `ResyncRequired`.")
    audit_retention_days_free: Annotated[int, at_least(0)] = setting(
        90, "Days audit entries of free-plan organizations are kept, and entries of no organization "
        "(an account's own: sign-ups, logins, sessions); older ones are pruned hourly in batches (and by `pcg audit prune`); `0`: kept "
        "forever.")
    audit_retention_days_pro: Annotated[int, at_least(0)] = setting(
        365, "Days audit entries of pro-plan organizations are kept; `0`: kept forever.")
    audit_retention_days_enterprise: Annotated[int, at_least(0)] = setting(
        0, "Days audit entries of enterprise organizations are kept; `0` (the default): kept forever.")
    public_url: Annotated[str, BeforeValidator(lambda v: str(v).strip().rstrip("/"))] = setting(
        "http://127.0.0.1:8000", "Base URL printed in instructions (GraphiQL link). `pcg serve` "
        "derives it from `--host`/`--port` when unset.")
    smtp_url: Annotated[str, BeforeValidator(_smtp_url)] = setting(
        "", "Where emails go: `smtp://user:pass@host:port` (STARTTLS when offered; `?starttls=1` "
        "requires it, `?starttls=0` never), `smtps://...` (implicit TLS, port 465), "
        "`?cafile=PATH` to trust a private CA. Unset: outside production emails are written to "
        "the log (with their links) and count as sent; in production they wait in the outbox. "
        "See Email.")
    mail_from: Annotated[str, BeforeValidator(_mail_from)] = setting(
        "PCG <no-reply@localhost>", "The `From` of every email: an address, optionally with a name.")
    smtp_timeout: Annotated[float, BeforeValidator(_seconds)] = setting(
        30, "Seconds each SMTP step (connect, TLS, each command) may take; then the attempt fails "
        "and the email is retried.")
    outbox_worker: StrictFlag = setting(
        True, "`1`: this process delivers the email outbox (claims are exclusive, so every "
        "instance may); `0`: it only queues.")
    outbox_max_attempts: Annotated[int, at_least(1)] = setting(
        12, "Attempts to deliver one email before it is kept `dead` for operators (`pcg outbox`).")
    outbox_retry_seconds: Annotated[float, BeforeValidator(_seconds)] = setting(
        30, "First retry delay of a failed email; it doubles with each attempt (up to an hour), "
        "with jitter.")
    migrations_dir: Path = setting(PROJECT_ROOT / "migrations", "Where the migrations are read from.", env=False)
    nora_provider: Annotated[Literal["builtin", "openai"], BeforeValidator(_choice("builtin", "openai"))] = setting(
        "builtin", "NORA's model provider: `builtin` or `openai`.")
    nora_base_url: str = setting("", "OpenAI-compatible endpoint for the `openai` provider.")
    nora_api_key: str = setting("", "API key for the `openai` provider.")
    nora_model: str = setting("", "Model name for the `openai` provider.")
    nora_timeout: Annotated[float, BeforeValidator(_seconds)] = setting(
        60, "Seconds NORA waits for the `openai` provider to connect or send its next chunk; then the "
        "reply fails with `PROVIDER_TIMEOUT`.")
    nora_orphan_after: Annotated[int, at_least(1)] = setting(
        10, "Seconds without a heartbeat from the instance writing a NORA reply before any instance "
        "ends the reply `FAILED` (`INTERRUPTED`).")
    nora_quota_free: Annotated[int, at_least(0)] = setting(
        50_000, "NORA tokens per organization per UTC day on the free plan (enterprise: unlimited).")
    nora_quota_pro: Annotated[int, at_least(0)] = setting(
        1_000_000, "NORA tokens per organization per UTC day on the pro plan.")
    plan_enterprise_members: Annotated[int, at_least(0)] = setting(
        0, "Members (pending invites included) an enterprise organization may hold; `0`: unlimited.")
    plan_enterprise_projects: Annotated[int, at_least(0)] = setting(
        0, "Projects (archived ones excluded) an enterprise organization may hold; `0`: unlimited.")
    plan_enterprise_tasks_per_project: Annotated[int, at_least(0)] = setting(
        0, "Tasks (archived ones included) one project of an enterprise organization may hold; `0`: "
        "unlimited.")
    plan_enterprise_comment_chars: Annotated[int, at_least(0)] = setting(
        0, "Characters in one comment on the enterprise plan; `0`: the API's maximum (10,000).")
    max_body_bytes: Annotated[int, at_least(1024)] = setting(
        1_048_576, "Largest request body; a larger one is refused with 413 `PAYLOAD_TOO_LARGE` before "
        "it is read whole.")
    # Request limits; `settings.limits` gathers them for schema/limits.py.
    max_tokens: Annotated[int, at_least(100)] = setting(
        Limits.max_tokens, "Most lexical tokens in a GraphQL document (`TOKEN_LIMIT_EXCEEDED`).")
    max_document_chars: Annotated[int, at_least(1000)] = setting(
        Limits.max_document_chars, "Longest GraphQL document, in characters (`TOKEN_LIMIT_EXCEEDED`).")
    max_depth: Annotated[int, at_least(1)] = setting(
        Limits.max_depth, "Deepest nesting of fields with selections (`DEPTH_LIMIT_EXCEEDED`).")
    max_aliases: Annotated[int, at_least(0)] = setting(
        Limits.max_aliases, "Most aliases in one selection set, fragments merged (`ALIAS_LIMIT_EXCEEDED`).")
    max_directives: Annotated[int, at_least(0)] = setting(
        Limits.max_directives, "Most directives in a document (`DIRECTIVE_LIMIT_EXCEEDED`).")
    max_root_fields: Annotated[int, at_least(1)] = setting(
        Limits.max_root_fields, "Most root fields in one operation (`ROOT_FIELD_LIMIT_EXCEEDED`).")
    max_cost: Annotated[int, at_least(1)] = setting(
        Limits.max_cost, "Highest static cost of one operation, in points (`MAX_COST_EXCEEDED`); see Security.")
    cors_origins: Annotated[tuple[str, ...], BeforeValidator(_origins)] = setting(
        (), "Comma-separated origins allowed to call the API from a browser (HTTP and websocket); "
        "empty: same origin only.")
    # None: on, except in production (graphiql_enabled).
    graphiql: Annotated[bool | None, BeforeValidator(lambda v: None if v is None else _flag(False)(v))] = setting(
        None, "Serve the GraphiQL explorer at GET /graphql.", shown="1 (0 in production)")
    hsts: Flag = setting(
        False, "Send Strict-Transport-Security (set to 1 when the server is reached over TLS).")
    trusted_documents: Annotated[Literal["off", "log", "enforce"], BeforeValidator(
        lambda v: _choice("off", "log", "enforce")(_default(v, "off")))] = setting(
        "off", "`enforce`: only documents added with `pcg documents add` run (`DOCUMENT_NOT_TRUSTED` "
        "otherwise); `log`: run all, log unlisted ones; `off`.")
    trusted_proxies: Annotated[tuple[str, ...], BeforeValidator(_networks)] = setting(
        (), "Comma-separated IPs or networks of reverse proxies whose `X-Forwarded-For`/`-Proto` are "
        "believed (client IP for rate limits and audit); empty: none.")
    rate_limit: StrictFlag = setting(
        True, "`1` charges each GraphQL operation's cost to its caller's points per minute; `0` turns "
        "that budget off (the login, sign-up and socket limits below have their own switches).")
    rate_limit_free: Annotated[int, at_least(0)] = setting(
        100, "Points per minute (1 per request plus 1 per 100 objects of its cost) for a user or API "
        "key on the free plan (or in no organization).")
    rate_limit_pro: Annotated[int, at_least(0)] = setting(500, "Points per minute on the pro plan.")
    rate_limit_enterprise: Annotated[int, at_least(0)] = setting(2_000, "Points per minute on the enterprise plan.")
    rate_limit_anonymous: Annotated[int, at_least(0)] = setting(
        60, "Points per minute per IP address for requests without a credential.")
    rate_limit_login_email: Annotated[int, at_least(0)] = setting(
        5, "Failed `logIn`s per email per 15 minutes, then `RATE_LIMITED` (a success clears the "
        "count); `0`: off.")
    rate_limit_login_ip: Annotated[int, at_least(0)] = setting(50, "Failed `logIn`s per IP address per 15 minutes; `0`: off.")
    rate_limit_signup_ip: Annotated[int, at_least(0)] = setting(10, "`signUp` attempts per IP address per hour; `0`: off.")
    rate_limit_reset_email: Annotated[int, at_least(0)] = setting(
        3, "`requestPasswordReset`s per email address per hour, whether or not it has an account; "
        "`0`: off.")
    rate_limit_reset_ip: Annotated[int, at_least(0)] = setting(
        20, "`requestPasswordReset`s per IP address per hour; `0`: off.")
    rate_limit_verify_resend: Annotated[int, at_least(0)] = setting(
        3, "`resendVerificationEmail`s per user per hour; `0`: off.")
    rate_limit_sockets_per_ip: Annotated[int, at_least(0)] = setting(
        50, "Open websockets per IP address on one instance; more are closed with 1013 (try again "
        "later); `0`: off.")
    # off | loopback | token:<secret> (server/metrics.py)
    metrics: Annotated[str, BeforeValidator(_metrics)] = setting(
        "loopback", "Who may read `/metrics`: `off` (404), `loopback` (peers 127.0.0.1 and ::1 only) "
        "or `token:SECRET` (`Authorization: Bearer SECRET`, 16+ characters); others get 403 "
        "`FORBIDDEN`. See Observability.")
    log_format: Annotated[Literal["text", "json"], BeforeValidator(
        lambda v: _choice("text", "json", lower=True)(_default(v, "text")))] = setting(
        "text", "`text`: readable lines with the request id; `json`: one JSON object per line (see "
        "Observability).")
    log_level: Annotated[str, BeforeValidator(
        _choice("critical", "error", "warning", "info", "debug", lower=True))] = setting(
        "info", "Log level of `pcg serve` and its workers; `--log-level` sets it. `debug` also logs "
        "every SQL statement.")
    otel_endpoint: Annotated[str, BeforeValidator(lambda v: str(v).strip())] = setting(
        "", "OpenTelemetry collector base URL (OTLP over HTTP, e.g. `http://127.0.0.1:4318`): one span "
        "per GraphQL operation goes to its `/v1/traces`. Needs `pip install 'pcg-graphql[otel]'`.")
    slow_operation_ms: Annotated[int, at_least(0)] = setting(
        500, "A query or mutation slower than this logs one warning with its name, duration and "
        "statement count.")
    # schema/execution: compiled plans for validated operations (graphql-core when off).
    compiled_execution: Flag = setting(
        True, "`1` runs validated operations from cached compiled plans (the same answers as "
        "graphql-core, several times faster on large reads; see Benchmarks); `0` runs every "
        "operation on graphql-core's executor.")
    # schema/caching.py: whole query answers, exact (keyed on the versions they read).
    response_cache: Flag = setting(
        True, "`1` keeps whole query answers and serves a repeated query from them while nothing "
        "it may have read has changed (keyed on the caller, their memberships and every "
        "organization's write version; shared in Redis when PCG_BROADCAST_URL is redis://); "
        "`0` runs every query.")
    response_cache_entries: Annotated[int, at_least(1)] = setting(
        5000, "Most answers the in-process response cache keeps (least recently used go first).")
    response_cache_bytes: Annotated[int, at_least(1024)] = setting(
        64 * 1024 * 1024, "Most bytes of answers the in-process response cache keeps; an answer "
        "larger than a quarter of this is not kept.")
    response_cache_ttl: Annotated[int, at_least(1)] = setting(
        600, "Seconds an answer lives in Redis (only bounds memory: a stale answer is never "
        "served, since a write changes the key).")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(explain(error)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        token = _ENVIRON.set(os.environ if environ is None else environ)
        try:
            return cls()
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _Environment(settings_cls, environ))

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        # `Settings(limits=Limits(...))`, as tests write it, sets the seven request limits.
        limits = values.pop("limits", None)
        if limits is not None:
            if not isinstance(limits, Limits):
                raise ValueError("limits must be a schema.limits.Limits")
            values.update({name: getattr(limits, name) for name in LIMIT_FIELDS})
        if not values.get("database_url"):
            data_dir = Path(values.get("data_dir") or DEFAULT_DATA_DIR)
            values["database_url"] = f"sqlite://{data_dir / 'pcg.db'}"
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("PCG_DB_POOL_MIN must not exceed PCG_DB_POOL_MAX")
        return self

    @cached_property
    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in LIMIT_FIELDS})

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.is_production) if self.graphiql is None else self.graphiql

    @property
    def is_production(self) -> bool:
        return self.env == "production"

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


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields changed, validated like the original (dataclasses.replace's
    contract, which tests and server/db.py rely on)."""
    values = {name: getattr(settings, name) for name in Settings.model_fields}
    if "limits" in changes:
        for name in LIMIT_FIELDS:
            values.pop(name)
    return Settings(**{**values, **changes})


class _Environment(EnvSettingsSource):
    """The PCG_* variables of a given mapping (os.environ, or a test's dict); fields declared
    with env=False are never read from it."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if not _from_env(field):
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _from_env(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return not isinstance(extra, dict) or extra.get("env", True) is not False


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def explain(error: ValidationError) -> str:
    """One line per bad value, naming its variable: "PCG_MAX_DEPTH must be a whole number of at
    least 1", never pydantic's report."""
    lines = []
    for item in error.errors(include_url=False):
        where = item["loc"][0] if item["loc"] else None
        if item["type"] == "value_error":
            text = str(item["ctx"]["error"])
        elif item["type"] == "extra_forbidden":
            text = "is not a setting"
        else:
            text = item["msg"][:1].lower() + item["msg"][1:]
        if where is None:
            lines.append(text)
        elif isinstance(where, str) and where in Settings.model_fields and _from_env(Settings.model_fields[where]):
            lines.append(f"{env_name(where)} {text}")
        else:
            lines.append(f"{where}: {text}")
    return "; ".join(lines)


# -- documentation ------------------------------------------------------------------------------


def documented() -> list[tuple[str, str, str]]:
    """(variable, default as documented, description) for every environment setting, in
    declaration order: the source of `pcg serve --help` and the README table."""
    rows = []
    for name, field in Settings.model_fields.items():
        if not _from_env(field):
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        rows.append((env_name(name), _shown(field.default, extra.get("shown")), field.description or ""))
    return rows


def _shown(default: Any, shown: Any) -> str:
    if shown is not None:
        return str(shown)
    if isinstance(default, bool):
        return "`1`" if default else "`0`"
    if default in ("", ()):
        return "(empty)"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {default} | {text} |" for name, default, text in documented()]
    return "\n".join(lines) + "\n"


def help_text() -> str:
    rows = documented()
    width = max(len(name) for name, _, _ in rows)
    lines = ["environment (all optional):"]
    for name, default, text in rows:
        lines.append(f"  {name:<{width}}  default: {default.replace('`', '')}")
        lines.extend(textwrap.wrap(text.replace("`", ""), 76, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)
