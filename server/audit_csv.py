"""`GET /api/orgs/{slug}/audit.csv`: an organization's audit log as CSV, streamed.

Owners and admins, with the same Bearer credential as /graphql and the filters of
`Organization.auditEntries` as query parameters. Rows leave in keyset batches (see
resolvers/audit/entries.py), so a million entries cost the memory of one batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from models import User
from resolvers.audit import entries as audit
from resolvers.context import Context, user_agent_of
from resolvers.errors import AppError, BadInput, NotFound
from resolvers.ids import to_global_id
from schema.authentication import access_for

COLUMNS = [
    "id", "createdAt", "action", "resourceType", "resourceId", "actor", "actorEmail",
    "apiKey", "ip", "userAgent", "requestId", "before", "after",
]
# Query parameter -> AuditFilter field; the names of AuditEntryFilter's fields.
_TEXT_PARAMS = {"actor": "actor", "action": "action", "resourceType": "resource_type",
                "resourceId": "resource_id", "ip": "ip"}
_TIME_PARAMS = {"from": "since", "to": "until"}
_STATUS = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
           "RATE_LIMITED": 429, "SERVICE_UNAVAILABLE": 503}
# A cell a spreadsheet would run as a formula (OWASP "CSV injection") gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_filter(params) -> audit.AuditFilter:
    unknown = set(params) - set(_TEXT_PARAMS) - set(_TIME_PARAMS)
    if unknown:
        raise BadInput(f"Unknown parameter `{sorted(unknown)[0]}`", field=sorted(unknown)[0])
    values: dict = {}
    for param, name in _TEXT_PARAMS.items():
        if param in params:
            values[name] = params[param]
    for param, name in _TIME_PARAMS.items():
        if param in params:
            try:
                values[name] = datetime.fromisoformat(params[param])
            except ValueError:
                raise BadInput(f"`{param}` must be an RFC 3339 date and time", field=param) from None
    return audit.AuditFilter(**values)


def _cell(value) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _json(value) -> str:
    return "" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


async def csv_lines(batches: AsyncIterator[list]) -> AsyncIterator[str]:
    """The header, then one line per entry; each batch's actors cost one statement."""
    yield _line(COLUMNS)
    async for rows in batches:
        actor_ids = {r.actor_id for r in rows if r.actor_id is not None}
        emails = dict(await User.filter(id__in=actor_ids).values_list("id", "email")) if actor_ids else {}
        chunk = io.StringIO()
        writer = csv.writer(chunk, lineterminator="\r\n")
        for r in rows:
            writer.writerow([
                to_global_id("AuditEntry", r.id),
                r.created_at.isoformat(),
                _cell(r.action),
                _cell(r.resource_type),
                _cell(r.resource_id),
                to_global_id("User", r.actor_id) if r.actor_id else "",
                _cell(emails.get(r.actor_id)),
                to_global_id("ApiKey", r.api_key_id) if r.api_key_id else "",
                _cell(r.ip),
                _cell(r.user_agent),
                _cell(r.request_id),
                _json(r.before),
                _json(r.after),
            ])
        yield chunk.getvalue()


def _error(error: AppError, request_id: str | None) -> Response:
    extensions = {"code": error.code, **error.extensions}
    if request_id:
        extensions["requestId"] = request_id
    body = orjson.dumps({"errors": [{"message": error.message, "extensions": extensions}]})
    headers = {"WWW-Authenticate": "Bearer"} if error.code == "UNAUTHENTICATED" else None
    return Response(body, _STATUS.get(error.code, 400), headers=headers, media_type="application/json")


async def endpoint(request: Request) -> Response:
    settings = request.app.state.settings
    request_id = request.scope.get("state", {}).get("request_id")
    ctx = Context(
        settings=settings,
        access=await access_for(
            request.headers.get("authorization"), settings.secret_key, request.app.state.sessions
        ),
        broadcast=request.app.state.broadcast,
        session_registry=request.app.state.sessions,
        request=request,
        ip=request.client.host if request.client else None,
        user_agent=user_agent_of(request.headers),
        **({"request_id": request_id} if request_id else {}),
    )
    try:
        ctx.access.user  # noqa: B018 - raises UNAUTHENTICATED for anonymous or a bad credential
        flt = parse_filter(request.query_params)
        slug = request.path_params["slug"]
        # A slug no organization can have (PostgreSQL refuses NUL) is simply not found.
        org = None
        if len(slug) <= 64 and "\x00" not in slug:
            org = await (await ctx.access.organizations()).get_or_none(slug=slug)
        if org is None:
            raise NotFound("Organization")
        batches = await audit.export(ctx, org, flt)
    except AppError as error:
        return _error(error, request_id)
    filename = f"audit-{org.slug}.csv"
    return StreamingResponse(
        csv_lines(batches), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"},
    )
