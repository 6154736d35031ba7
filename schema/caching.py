"""The exact response cache: a query's whole answer, served again while nothing it may have
read has changed.

Why a key is enough, with no invalidation:

- Everything a caller may read lies in the organizations they belong to (tenant isolation),
  plus their own account. Each organization has a version: its audit log's `audit_seq`, which
  every write of the organization advances inside its own transaction (one audit entry per
  write; tests/test_audit_every_mutation.py holds every mutation to it).
- The access layer reads the caller's memberships and those versions in the statement it runs
  anyway (resolvers/access.py), so checking costs no statement.
- The key holds the document, the operation, the variables, who asks with everything they
  belong to (`Access.membership_key`: user, API key, org and project roles) and those versions.
  A write moves a version, so later requests compute another key; an answer stored under an
  old key is never asked for again. A caller who loses access has other memberships, hence
  another key: no answer read with the old access can reach them.
- The versions are read before the answer's own reads, so an answer is at least as new as
  its key says (a write committed in between makes it newer, never older). On a websocket,
  whose access lives as long as the connection, they are read again for every operation.

What the versions do not cover makes an operation uncacheable (VOLATILE): answers that change
with the clock (invite expiry, usage of the day, rate limits), rows written outside a write's
transaction (an API key's or session's last use, NORA's streamed replies), rows that pruning
removes without an audit entry (sessions, the audit log itself), and `node`/`nodes`, whose
IDs may name any of those. Mutations and subscriptions are never cached. A field added to
the schema must be classified: tests/test_response_cache.py fails until it is.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from graphql import ExecutionResult, OperationType, TypeInfo, TypeInfoVisitor, Visitor, print_schema, visit
from graphql.language import DocumentNode, FieldNode

from resolvers import metrics
from resolvers.context import Context
from resolvers.response_cache import Store

log = logging.getLogger("pcg.cache")

# Every field of these types may change without a version moving.
VOLATILE_TYPES = frozenset({
    "Session", "SessionConnection", "SessionEdge",
    "NoraConversation", "NoraConversationConnection", "NoraConversationEdge",
    "NoraMessage", "NoraMessageConnection", "NoraMessageEdge", "NoraUsage",
    "AuditEntry", "AuditEntryConnection", "AuditEntryEdge",
    "RateLimit", "OrganizationUsage",
})
# And these fields, on types that are otherwise versioned.
VOLATILE_FIELDS = frozenset({
    "Query.node", "Query.nodes",  # any node type, volatile ones included
    "Query.noraConversations", "Query.noraConversation", "Query.noraUsage", "Query.rateLimit",
    "Viewer.sessions", "Viewer.securityLog", "Viewer.emailVerified",
    "Organization.usage", "Organization.invites",  # pending = not yet expired: the clock
    "Organization.auditEntries", "Organization.auditCursor",  # retention prunes without an entry
    "ApiKey.lastUsedAt",  # written when the key authenticates, outside any write
})

_MAX_DOCUMENTS = 1024
_verdicts: OrderedDict[tuple[str, str | None], bool] = OrderedDict()


def _has_volatile_field(schema: Any, document: DocumentNode) -> bool:
    type_info = TypeInfo(schema)
    found = False

    class Volatile(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            nonlocal found
            parent = type_info.get_parent_type()
            if parent is None:
                return
            if parent.name in VOLATILE_TYPES or f"{parent.name}.{node.name.value}" in VOLATILE_FIELDS:
                found = True

    visit(document, TypeInfoVisitor(type_info, Volatile()))
    return found


def cacheable(executor: Any) -> bool:
    """Whether this query's answers may be kept: decided once per document and operation
    (fragments and every operation of the document included, conservatively)."""
    operation = executor.operation
    if operation.operation != OperationType.QUERY or operation.loc is None:
        return False
    body = operation.loc.source.body
    key = (body, operation.name.value if operation.name else None)
    verdict = _verdicts.get(key)
    if verdict is None:
        # The whole document is walked: fragments are typed where they are defined.
        verdict = not _has_volatile_field(executor.schema, _document_of(executor))
        _verdicts[key] = verdict
        while len(_verdicts) > _MAX_DOCUMENTS:
            _verdicts.popitem(last=False)
    else:
        _verdicts.move_to_end(key)
    return verdict


def _document_of(executor: Any) -> DocumentNode:
    return DocumentNode(
        definitions=(executor.operation, *executor.fragment_definitions.values())
    )


def _key(ctx: Context, executor: Any) -> str | None:
    """The answer's key, or None when the caller cannot be keyed (a refused credential)."""
    access = ctx.access
    if ctx.authorization and not access.is_authenticated:
        return None  # a credential that failed: the answer is an error anyway
    who: Any = None
    versions: Any = ()
    if access.is_authenticated:
        who = access.membership_key()
        versions = access.data_versions()
    operation = executor.operation
    parts = (
        _generation(executor.schema),
        operation.loc.source.body,
        operation.name.value if operation.name else None,
        executor.variable_values.coerced,
        who,
        versions,
    )
    raw = orjson.dumps(parts, default=_plain, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()


def _on_websocket(ctx: Context) -> bool:
    request = ctx.request
    return request is not None and request.scope.get("type") == "websocket"


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


async def answer(
    executor: Any, store: Store, execute: Callable[[bool | None], Any], serially: bool | None
) -> ExecutionResult:
    """The stored answer for this request's key, or the executed one (then stored when it
    has no errors)."""
    ctx: Context = executor.context_value
    if ctx.access.is_authenticated:
        if _on_websocket(ctx):
            # A socket's access lives as long as the connection: its versions were read by an
            # earlier operation. Read them again, or a write made since would go unseen.
            await ctx.access.reload()
        else:
            await ctx.access.load()
    key = _key(ctx, executor)
    if key is None:
        metrics.RESPONSE_CACHE.labels("bypass").inc()
        return await _awaited(execute(serially))
    data = await store.get(key)
    if data is not None:
        metrics.RESPONSE_CACHE.labels("hit").inc()
        return ExecutionResult(data, None)
    result = await _awaited(execute(serially))
    if isinstance(result, ExecutionResult) and not result.errors and result.data is not None:
        size = len(orjson.dumps(result.data))
        await store.put(key, result.data, size)
        metrics.RESPONSE_CACHE.labels("miss").inc()
    else:
        metrics.RESPONSE_CACHE.labels("bypass").inc()
    return result


async def _awaited(value: Any | Awaitable[Any]) -> Any:
    return await value if inspect.isawaitable(value) else value


_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "models"
_generations: dict[int, str] = {}


def _generation(schema: Any) -> str:
    """What every key starts with: this schema and the migrations it runs on. A release that
    changes either never reads the answers of another (Redis outlives a deploy)."""
    found = _generations.get(id(schema))
    if found is None:
        head = max((p.name for p in _MIGRATIONS.glob("*.py")), default="", key=_migration_number)
        text = print_schema(schema) + "|" + head
        found = _generations[id(schema)] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return found


def _migration_number(name: str) -> int:
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1
