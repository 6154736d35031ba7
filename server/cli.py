"""`pcg`: serve, migrate, seed, export-schema, create-api-key, audit export | prune, set-plan.

Heavy modules (the schema, uvicorn, the models) are imported inside the commands so that
configuration mistakes are reported at once, and `pcg --help` stays instant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from server.settings import PROJECT_ROOT, Settings, SettingsError, help_text, markdown_table


class CliError(Exception):
    """A failure explained in one line; printed without a traceback."""


# -- helpers -----------------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings.from_env().with_secret()


def safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def say(*lines: str) -> None:
    # Flushed: `pcg serve` output is often piped, and the token must show before uvicorn's logs.
    print(*lines, sep="\n", flush=True)


@contextlib.asynccontextmanager
async def database(settings: Settings):
    """The CLI's own Tortoise context, opened after migrate() has closed Aerich's."""
    from tortoise import Tortoise

    from server.db import tortoise_config

    await Tortoise.init(config=tortoise_config(settings.database_url, settings))
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def _migrate(settings: Settings) -> list[str]:
    from tortoise.exceptions import DBConnectionError, OperationalError

    from server.db import migrate

    try:
        applied = await migrate(settings)
    except (OSError, DBConnectionError, OperationalError) as error:
        raise CliError(f"cannot migrate the database at {safe_url(settings.database_url)}: {error}") from None
    if applied:
        for name in applied:
            say(f"Applied migration {name}")
    else:
        say(f"Database is up to date ({safe_url(settings.database_url)})")
    return applied


def _refuse_demo_in_production(settings: Settings) -> None:
    if settings.is_production:
        # The demo's accounts share a password printed in the README.
        raise CliError("--demo is refused with PCG_ENV=production: its accounts share a known password")


async def _seed(settings: Settings):
    from server.demo import seed_demo


    async with database(settings):
        info = await seed_demo(settings)
    say("", info.instructions())
    return info


# -- serve -------------------------------------------------------------------------------------


def _public_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def cmd_serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    if args.reload and args.workers > 1:
        raise CliError("--reload and --workers cannot be combined")
    if "PCG_PUBLIC_URL" not in os.environ:
        # Printed links should point at where we listen; worker processes read the same value.
        os.environ["PCG_PUBLIC_URL"] = _public_url(args.host, args.port)
    settings = Settings.from_env()
    if args.workers > 1 and settings.broadcast_url.startswith("memory://"):
        raise CliError(
            f"--workers {args.workers} needs a shared broadcast: with PCG_BROADCAST_URL=memory:// "
            "board events would not cross processes. Set PCG_BROADCAST_URL=redis://... or "
            "postgres://..., or run one worker."
        )
    # A generated key is written to the data dir here, before any worker starts, so that
    # every worker reads the same one.
    if args.demo:
        _refuse_demo_in_production(settings)
    settings = settings.with_secret()
    # Workers are fresh processes: they configure their logging from these (server/logs.py).
    os.environ["PCG_LOG_LEVEL"] = args.log_level
    os.environ["PCG_LOG_FORMAT"] = settings.log_format
    from server.logs import configure_logging

    configure_logging(args.log_level, settings.log_format)
    if args.workers > 1:
        _multiprocess_metrics(settings)

    async def prepare() -> None:
        await _migrate(settings)
        if args.demo:
            await _seed(settings)

    asyncio.run(prepare())

    import uvicorn

    # No permessage-deflate: board events are small JSON, and compressing each one for every
    # subscriber cost more CPU than it saved bytes (bench/fanout.py). log_config=None: uvicorn's
    # loggers propagate to ours, so its lines carry request ids and follow PCG_LOG_FORMAT too.
    # X-Forwarded-* are read by the app itself, from PCG_TRUSTED_PROXIES only (uvicorn's own
    # default would trust any process on 127.0.0.1); no Server header to fingerprint.
    options = dict(
        host=args.host, port=args.port, log_level=args.log_level, ws_per_message_deflate=False,
        proxy_headers=False, server_header=False, log_config=None,
        # A websocket message is bounded like a request body (uvicorn's default is 16 MiB).
        ws_max_size=settings.max_body_bytes,
    )
    if args.reload or args.workers > 1:
        if args.reload:
            options["reload_dirs"] = [
                str(PROJECT_ROOT / d) for d in ("server", "schema", "resolvers", "models")
            ]
        uvicorn.run(
            "server.app:app_from_env", factory=True, reload=args.reload, workers=args.workers, **options
        )
    else:
        from server.app import create_app

        uvicorn.run(create_app(settings), **options)
    return 0


def _multiprocess_metrics(settings: Settings) -> None:
    """prometheus-client's multiprocess mode: each worker writes its values to files in a
    directory that /metrics aggregates. A fresh one per run (stale files of a previous run
    would be summed in), set before any worker imports prometheus_client, removed at exit."""
    import atexit
    import shutil
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # the operator chose one
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="metrics-", dir=settings.data_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, True)


def settings_help() -> str:
    return help_text()


def cmd_settings(args: argparse.Namespace) -> int:
    """The settings as declared in server/settings.py: the README's table with --markdown."""
    sys.stdout.write(markdown_table() if args.markdown else help_text() + "\n")
    sys.stdout.flush()
    return 0


# -- migrate / seed / export-schema ------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    asyncio.run(_migrate(Settings.from_env()))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    if not args.demo:
        raise CliError("nothing to seed: pass --demo")
    settings = _settings()
    _refuse_demo_in_production(settings)

    async def run() -> None:
        await _migrate(settings)
        await _seed(settings)

    asyncio.run(run())
    return 0


def schema_sdl() -> str:
    from schema.root import schema

    return schema.as_str() + "\n"


def cmd_export_schema(args: argparse.Namespace) -> int:
    target = args.output_opt or args.output or "schema.graphql"
    sdl = schema_sdl()
    if target == "-":
        sys.stdout.write(sdl)
        sys.stdout.flush()
    else:
        Path(target).write_text(sdl)
        say(f"Wrote {target}")
    return 0


# -- create-api-key ----------------------------------------------------------------------------


async def create_api_key(
    settings: Settings, org_slug: str, name: str, role: str, email: str | None,
    scope: str = "write",
) -> tuple[str, object]:
    """Create a key through the same resolver as the createApiKey mutation, acting as
    `email` (default: the org's first owner), so the rules and the audit entry are the same."""
    from models import ApiKeyScope, Organization, OrganizationMember, OrgRole
    from resolvers.access import Access
    from resolvers.context import Context
    from resolvers.errors import AppError
    from resolvers.identity import api_keys
    from resolvers.identity.auth import Principal

    org = await Organization.get_or_none(slug=org_slug)
    if org is None:
        raise CliError(f"no organization with slug {org_slug!r}")
    members = OrganizationMember.filter(organization_id=org.id, user__is_active=True)
    if email:
        member = await members.filter(user__email=email.strip().lower()).select_related("user").first()
        if member is None:
            raise CliError(f"{email} is not an active member of {org_slug!r}")
    else:
        member = await members.filter(role=OrgRole.OWNER).order_by("id").select_related("user").first()
        if member is None:
            raise CliError(f"{org_slug!r} has no active owner; pass --user EMAIL")
    ctx = Context(
        settings=settings,
        access=Access(Principal(user=member.user)),
        broadcast=None,
        request_id=f"cli-{uuid.uuid4().hex[:24]}",
    )
    try:
        key, plaintext = await api_keys.create_api_key(
            ctx, org.id, name, OrgRole(role), None, ApiKeyScope(scope)
        )
    except AppError as error:
        raise CliError(f"as {member.user.email}: {error.message}") from None
    key.created_by = member.user
    return plaintext, key


def cmd_backup(args: argparse.Namespace) -> int:
    from server.backup import BackupError, backup_sqlite

    settings = _settings()
    try:
        size = backup_sqlite(settings.database_url, Path(args.output))
    except BackupError as error:
        raise CliError(str(error)) from None
    say(f"Backed up {safe_url(settings.database_url)} to {args.output} ({size:,} bytes)")
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    from graphql import GraphQLError, parse, validate

    from models import TrustedDocument
    from resolvers import documents
    from schema.root import schema
    from schema.runtime import graphql_schema

    settings = _settings()
    texts = []
    for name in getattr(args, "files", None) or []:
        path = Path(name)
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        text = path.read_text()
        try:
            errors = validate(graphql_schema(schema), parse(text))
        except GraphQLError as error:
            errors = [error]
        if errors:
            raise CliError(f"{path}: not a valid document for this schema: {errors[0].message}")
        texts.append((path, text))

    async def run() -> None:
        await _migrate(settings)
        async with database(settings):
            if args.action == "add":
                for path, text in texts:
                    digest, created = await documents.add(text)
                    say(f"{digest}  {path}" + ("" if created else "  (already trusted)"))
            elif args.action == "remove":
                if not await documents.remove(args.sha256):
                    raise CliError(f"no trusted document {args.sha256}")
                say(f"Removed {args.sha256}")
            else:
                for row in await TrustedDocument.all().order_by("created_at"):
                    say(f"{row.sha256}  {row.name or '(anonymous)'}  {row.created_at:%Y-%m-%d}")

    asyncio.run(run())
    return 0


async def set_plan(settings: Settings, org_slug: str, plan: str) -> tuple[str, str]:
    """The operator's plan change: the same write as setOrganizationPlan, audited as
    organization.set_plan with no actor (the entry's request id starts with "cli-")."""
    from models import Organization, Plan
    from resolvers.access import Access
    from resolvers.context import Context
    from resolvers.org import organizations as orgs

    org = await Organization.get_or_none(slug=org_slug)
    if org is None:
        raise CliError(f"no organization with slug {org_slug!r}")
    before = org.plan.value
    ctx = Context(
        settings=settings, access=Access(None), broadcast=None,
        request_id=f"cli-{uuid.uuid4().hex[:24]}",
    )
    org = await orgs.write_plan(ctx, org, Plan(plan))
    return before, org.plan.value


def cmd_set_plan(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run():
        async with database(settings):
            return await set_plan(settings, args.org, args.plan)

    before, after = asyncio.run(run())
    if before == after:
        say(f"Organization {args.org!r} is already on the {after} plan; nothing changed.")
    else:
        say(f"Organization {args.org!r}: plan {before} -> {after}. Data beyond the new limits "
            "stays; writes past them are refused.")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """The email outbox for operators: counts and the messages of one status; `retry` gives
    DEAD messages a fresh set of attempts (a running server's worker sends them)."""
    from models import OutboxEmail, OutboxStatus
    from resolvers.email import outbox

    settings = Settings.from_env()

    async def run() -> None:
        async with database(settings):
            if args.action == "retry":
                count = await outbox.requeue_dead([int(i) for i in args.ids] if args.ids else None)
                say(f"Requeued {count} dead email(s).")
                return
            counts = await outbox.counts()
            say("  ".join(f"{status.value}: {counts[status]}" for status in OutboxStatus))
            status = OutboxStatus(args.status)
            rows = await OutboxEmail.filter(status=status).order_by("-id").limit(args.limit)
            for row in rows:
                error = f"  {row.last_error.splitlines()[0][:120]}" if row.last_error else ""
                say(f"{row.id}  {row.created_at:%Y-%m-%d %H:%M}  {row.template}  {row.to_address}  "
                    f"attempts={row.attempts}{error}")

    for value in getattr(args, "ids", None) or []:
        if not value.isdigit():
            raise CliError(f"not an outbox id: {value!r}")
    asyncio.run(run())
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run():
        async with database(settings):
            return await create_api_key(
                settings, args.org, args.name, args.role, args.user, args.scope
            )

    plaintext, key = asyncio.run(run())
    say(
        f'API key "{key.name}" for organization {args.org!r}, acting as {key.created_by.email} '
        f"with at most the {key.role.value} role"
        + (", read-only." if key.scope.value == "read" else "."),
        "Shown once; store it now. Send it as `Authorization: Bearer <key>`:",
        "",
        plaintext,
    )
    return 0


# -- audit export ------------------------------------------------------------------------------


async def audit_export(settings: Settings, args: argparse.Namespace, out) -> int:
    """Write the organization's audit log as CSV to `out`; returns the number of entries."""
    from models import Organization, User
    from resolvers.access import Access
    from resolvers.audit import entries as audit
    from resolvers.context import Context
    from resolvers.errors import AppError
    from resolvers.ids import to_global_id
    from server.audit_csv import csv_lines, parse_filter

    org = await Organization.get_or_none(slug=args.org)
    if org is None:
        raise CliError(f"no organization with slug {args.org!r}")
    params = {name: value for name, value in (
        ("from", args.since), ("to", args.until), ("action", args.action),
        ("resourceType", args.resource_type), ("resourceId", args.resource_id), ("ip", args.ip),
    ) if value is not None}
    if args.actor is not None:
        actor = await User.get_or_none(email=args.actor.strip().lower())
        if actor is None:
            raise CliError(f"no user with email {args.actor!r}")
        params["actor"] = to_global_id("User", actor.id)
    ctx = Context(settings=settings, access=Access(None), broadcast=None,
                  request_id=f"cli-{uuid.uuid4().hex[:24]}")
    try:
        batches = await audit.operator_export(ctx, org, parse_filter(params))
        lines = -1  # the header
        async for text in csv_lines(batches):
            out.write(text)
            lines += text.count("\r\n")
    except AppError as error:
        raise CliError(error.message) from None
    out.flush()
    return lines


def cmd_audit(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def run() -> int:
        async with database(settings):
            return await audit_export(settings, args, sys.stdout)

    count = asyncio.run(run())
    print(f"pcg: exported {count} audit entries of {args.org!r}", file=sys.stderr, flush=True)
    return 0


def cmd_audit_prune(args: argparse.Namespace) -> int:
    """Delete the audit entries past their plan's retention now (what every instance also does
    hourly), in batches of --batch rows."""
    from resolvers.audit import retention as audit_retention

    settings = Settings.from_env()

    async def run():
        async with database(settings):
            return await audit_retention.prune(settings, batch=args.batch)

    kept = audit_retention.retention(settings)
    pruned = asyncio.run(run())
    for scope, days in kept.items():
        label = "no organization" if scope == audit_retention.NO_ORGANIZATION else scope
        window = "kept forever" if days == 0 else f"older than {days} days"
        print(f"{label}: {pruned.by_scope.get(scope, 0)} pruned ({window})")
    print(f"pcg: pruned {pruned.total} audit entries in {len(pruned.batches)} batches", file=sys.stderr, flush=True)
    return 0


# -- parser ------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    """A whole number from 1 to 100,000 (a batch)."""
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 100_000):
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100000, not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcg",
        description="pcg-graphql: the GraphQL API server of PCG.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="apply migrations and run the server",
        description="Apply pending migrations, optionally seed the demo, and serve GraphQL "
        "at /graphql (GraphiQL in a browser) and health at /api/health.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (needs a shared broadcast)")
    serve.add_argument("--demo", action="store_true", help="seed the demo organization and print a token")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="apply pending database migrations",
        epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.set_defaults(func=cmd_migrate)

    settings_cmd = commands.add_parser(
        "settings", help="list the PCG_* settings (the README's table with --markdown)"
    )
    settings_cmd.add_argument("--markdown", action="store_true", help="print the README's Markdown table")
    settings_cmd.set_defaults(func=cmd_settings)

    seed = commands.add_parser("seed", help="seed data (the demo organization)")
    seed.add_argument("--demo", action="store_true", help="create the demo organization once")
    seed.set_defaults(func=cmd_seed)

    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("output", nargs="?", help="file to write, or - for stdout (default schema.graphql)")
    export.add_argument("--output", "-o", dest="output_opt", metavar="FILE")
    export.set_defaults(func=cmd_export_schema)

    docs = commands.add_parser(
        "documents", help="the trusted documents (PCG_TRUSTED_DOCUMENTS): add, list, remove"
    )
    doc_actions = docs.add_subparsers(dest="action", required=True, metavar="ACTION")
    doc_add = doc_actions.add_parser("add", help="trust each FILE's text (validated against the schema)")
    doc_add.add_argument("files", nargs="+", metavar="FILE")
    doc_actions.add_parser("list", help="print the trusted documents")
    doc_remove = doc_actions.add_parser("remove", help="stop trusting a document")
    doc_remove.add_argument("sha256", metavar="SHA256")
    docs.set_defaults(func=cmd_documents)

    backup = commands.add_parser(
        "backup", help="copy the SQLite database consistently while the server runs"
    )
    backup.add_argument("output", metavar="FILE", help="where to write the copy (must not exist)")
    backup.set_defaults(func=cmd_backup)

    key = commands.add_parser(
        "create-api-key", help="create an organization API key and print it once"
    )
    key.add_argument("--org", required=True, metavar="SLUG")
    key.add_argument("--name", required=True)
    key.add_argument("--role", default="admin", choices=["owner", "admin", "member"])
    key.add_argument("--user", metavar="EMAIL", help="the member the key acts as (default: an owner)")
    key.add_argument("--scope", default="write", choices=["read", "write"],
                     help="read: queries and subscriptions only (default: write)")
    key.set_defaults(func=cmd_create_api_key)

    audit = commands.add_parser("audit", help="read an organization's audit log, or prune it")
    audit_actions = audit.add_subparsers(dest="action_name", required=True, metavar="ACTION")
    audit_export_cmd = audit_actions.add_parser(
        "export", help="write the audit log as CSV to stdout, newest first (itself audited)"
    )
    audit_export_cmd.add_argument("--org", required=True, metavar="SLUG")
    audit_export_cmd.add_argument("--from", dest="since", metavar="TIME", help="entries at or after (RFC 3339)")
    audit_export_cmd.add_argument("--to", dest="until", metavar="TIME", help="entries before (RFC 3339)")
    audit_export_cmd.add_argument("--action", help='exactly this action, e.g. "task.update"')
    audit_export_cmd.add_argument("--actor", metavar="EMAIL", help="entries written by this user")
    audit_export_cmd.add_argument("--resource-type", metavar="TYPE", help='e.g. "Task"')
    audit_export_cmd.add_argument("--resource-id", metavar="ID", help="the object's primary key")
    audit_export_cmd.add_argument("--ip", help="entries written from this client address")
    audit_export_cmd.set_defaults(func=cmd_audit)
    audit_prune_cmd = audit_actions.add_parser(
        "prune", help="delete the entries past their plan's retention (PCG_AUDIT_RETENTION_DAYS_*) now"
    )
    audit_prune_cmd.add_argument("--batch", type=_positive, default=1000, metavar="N",
                                 help="most rows one DELETE statement removes (default 1000)")
    audit_prune_cmd.set_defaults(func=cmd_audit_prune)
    plan = commands.add_parser(
        "set-plan", help="change an organization's plan (free, pro, enterprise); audited"
    )
    plan.add_argument("--org", required=True, metavar="SLUG")
    plan.add_argument("--plan", required=True, choices=["free", "pro", "enterprise"])
    plan.set_defaults(func=cmd_set_plan)
    mail = commands.add_parser("outbox", help="the email outbox: list messages, retry dead ones")
    mail_actions = mail.add_subparsers(dest="action")
    listing = mail_actions.add_parser("list", help="counts by status, then the newest messages of one status")
    listing.add_argument("--status", default="dead", choices=["pending", "sending", "sent", "dead"])
    listing.add_argument("--limit", type=int, default=50)
    retry = mail_actions.add_parser("retry", help="give dead messages (all, or these ids) a fresh set of attempts")
    retry.add_argument("ids", nargs="*", metavar="ID")
    mail.set_defaults(func=cmd_outbox, action="list", status="dead", limit=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, SettingsError) as error:
        print(f"pcg: error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pcg seed --demo | head`): exit quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
