"""One execution of a subscription event for every subscriber who would get the same answer.

A board event reaches every subscriber of the board; each used to run the same selection
over the same event. Subscribers whose answer cannot differ share one execution: same event
object (a live event is decoded once per process and handed to every local subscriber),
same document, operation and variables, and the same facts about the viewer that the
selection can depend on.

What a selection can depend on is derived from the schema, field by field (`DECLARED`):

- EVENT: the event and the rows it reaches, the same for everyone who may see the event;
- ROLES: also the viewer's role on the event's project and organization (`viewerRole`,
  admin-only lists): the *signature* the subscription passes to `mark`;
- VIEWER: anything more of the viewer — lists the access layer narrows to the viewer's own
  memberships (`Organization.projects`), its identity — so the key also holds the viewer's
  identity and memberships (`Viewer.membership_key`).

A field's class is that of the field *where it is declared* (`BoardEvent.actor` covers every
event type that inherits it; an override is a new field). A field without a declaration is
VIEWER: a field added later is never shared by accident, and tests/test_event_sharing.py
fails until it is declared.

EVENT and ROLES fields return only objects of the event's own project and organization (or
users): ROLES fields read the viewer's role on *the* project or organization they are asked
of, which is the signature's only while that object is the event's. A field that can return an
object of another project or organization is VIEWER, whatever else it does.
"""

from __future__ import annotations

import asyncio
import weakref
from enum import IntEnum
from inspect import isawaitable
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    get_named_type,
    is_abstract_type,
)


class Depends(IntEnum):
    """What a field's answer may depend on besides the event, from least to most."""

    EVENT = 0
    ROLES = 1
    VIEWER = 2


EVENT, ROLES, VIEWER = Depends.EVENT, Depends.ROLES, Depends.VIEWER


def _each(depends: Depends, owner: str, names: str) -> dict[str, Depends]:
    return {f"{owner}.{name}": depends for name in names.split()}


# "Class.graphqlField" -> what it depends on. Class is the Python class that declares the
# field (for a generic like Connection, the generic).
DECLARED: dict[str, Depends] = {
    # Per event, a subscription root field answers the event its generator yielded for
    # this subscriber; the generator, not the answer, checks who may see it.
    **_each(EVENT, "Subscription", "boardEvents taskChanged"),
    **_each(EVENT, "NoraSubscription", "noraEvents"),
    # -- board events: read from the event's own payload, or rows it names by id
    **_each(EVENT, "BoardEvent", "cursor seq occurredAt projectId actor"),
    **_each(EVENT, "TaskCreated", "task"),
    **_each(EVENT, "TaskUpdated", "task changedFields"),
    **_each(EVENT, "TaskMoved", "task fromStatus toStatus position"),
    **_each(EVENT, "TaskArchived", "task"),
    **_each(EVENT, "TaskUnarchived", "task"),
    **_each(EVENT, "TaskDeleted", "taskId status"),
    **_each(EVENT, "CommentAdded", "taskId comment"),
    **_each(EVENT, "LabelCreated", "label"),
    **_each(EVENT, "CustomFieldDefined", "field"),
    **_each(EVENT, "ProjectUpdated", "project changedFields"),
    **_each(EVENT, "ProjectArchived", "project"),
    **_each(EVENT, "MemberEvent", "memberId user role"),
    **_each(EVENT, "MemberRoleChanged", "previousRole"),
    **_each(EVENT, "ResyncRequired", "reason"),
    # -- objects of the event's project: loaders and page specs that the viewer does not narrow
    **_each(
        EVENT, "Task",
        "id title description status priority position dueDate version createdAt updatedAt "
        "archivedAt customProperties project assignee createdBy parent labels commentCount "
        "subtaskCount subtasks comments",
    ),
    **_each(EVENT, "Comment", "id body createdAt updatedAt author task"),
    **_each(EVENT, "Label", "id name color createdAt project"),
    **_each(EVENT, "CustomFieldDefinition", "id key name type required createdAt options"),
    **_each(
        EVENT, "Project",
        "id name description createdAt updatedAt archivedAt organization board eventCursor "
        "tasks taskCount members memberCount labels customFields",
    ),
    **_each(ROLES, "Project", "viewerRole"),
    **_each(EVENT, "ProjectMember", "id role createdAt user project"),
    **_each(EVENT, "Board", "columns"),
    **_each(EVENT, "BoardColumn", "status tasks"),
    **_each(EVENT, "User", "id name email createdAt"),
    # -- the event's organization
    **_each(EVENT, "Organization", "id slug name plan createdAt"),
    **_each(ROLES, "Organization", "viewerRole invites apiKeys auditEntries"),  # admin-only lists
    # Counts of the organization, the same for every viewer who passes its READ check.
    **_each(ROLES, "Organization", "usage"),
    **_each(EVENT, "OrganizationUsage", "plan members pendingInvites projects limits"),
    **_each(EVENT, "PlanLimits", "members projects tasksPerProject"),
    # Narrowed to the viewer's own memberships, and reaches other projects.
    **_each(VIEWER, "Organization", "projects"),
    # Narrowed to the viewer's organizations by the access layer.
    **_each(VIEWER, "Organization", "members"),
    **_each(EVENT, "OrganizationMember", "id role createdAt user organization"),
    **_each(
        EVENT, "Invite",
        "id email role createdAt expiresAt acceptedAt revokedAt invitedBy organization",
    ),
    **_each(
        EVENT, "ApiKey",
        "id name prefix role createdAt lastUsedAt expiresAt revokedAt createdBy organization",
    ),
    # Reached only through the admin-only Organization.auditEntries (or node(id)).
    **_each(
        EVENT, "AuditEntry",
        "id action resourceType resourceId before after ip requestId createdAt actor",
    ),
    # Shown when the viewer administers the key's organization: the entry's, the event's.
    **_each(ROLES, "AuditEntry", "apiKey"),
    # A page presents what the list field that returned it selected: that field is declared.
    **_each(EVENT, "Connection", "edges nodes pageInfo totalCount"),
    **_each(EVENT, "Edge", "cursor node"),
    **_each(EVENT, "PageInfo", "hasNextPage hasPreviousPage startCursor endCursor"),
    # -- NORA events: read from the event's payload only
    **_each(EVENT, "NoraEvent", "cursor seq occurredAt conversationId messageId"),
    **_each(EVENT, "MessageStarted", "message replyTo"),
    **_each(EVENT, "TextDelta", "index offset text"),
    **_each(EVENT, "ToolCallStarted", "toolCallId name arguments"),
    **_each(EVENT, "ToolCallFinished", "toolCallId name ok result error"),
    **_each(EVENT, "MessageCompleted", "message usage"),
    **_each(EVENT, "MessageFailed", "code errorMessage message"),
    **_each(EVENT, "MessageCancelled", "message"),
    **_each(EVENT, "NoraResyncRequired", "reason"),
    **_each(EVENT, "NoraToolError", "code message"),
    **_each(EVENT, "NoraTokenUsage", "tokensIn tokensOut latencyMs"),
    **_each(
        EVENT, "NoraMessage",
        "id role content status toolName tokensIn tokensOut model provider latencyMs errorCode "
        "errorMessage createdAt updatedAt completedAt replyToId conversationId toolArguments "
        "toolResult",
    ),
}


def declared_at(gtype: GraphQLObjectType, name: str) -> str:
    """Where a field of an object type is declared: "Class.field" (see `DECLARED`)."""
    field = gtype.fields[name].extensions.get("strawberry-definition")
    definition = gtype.extensions.get("strawberry-definition")
    if field is None or definition is None:
        return f"{gtype.name}.{name}"
    resolver = field.base_resolver
    if resolver is not None:
        owner = resolver.wrapped_func.__qualname__.rpartition(".")[0]
        # A resolver made by a factory (node_id) belongs to the type that called it.
        return f"{owner if owner and '<locals>' not in owner else gtype.name}.{name}"
    for cls in definition.origin.__mro__:
        if field.python_name in vars(cls).get("__annotations__", {}):
            return f"{cls.__name__}.{name}"
    return f"{gtype.name}.{name}"


def field_depends(gtype: GraphQLObjectType, name: str) -> Depends:
    if name == "__typename":
        return EVENT
    if name not in gtype.fields:
        return VIEWER
    return DECLARED.get(declared_at(gtype, name), VIEWER)


class _SchemaFacts:
    """Per schema: each object field's class, and each live operation's, computed once."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.fields: dict[tuple[str, str], Depends] = {}
        # id(operation node) -> (weak reference to it, its class). The parser cache hands every
        # subscriber of a document the same node; an entry goes when its document does.
        self.operations: dict[int, tuple[weakref.ref, Depends]] = {}

    def field(self, gtype: GraphQLObjectType, name: str) -> Depends:
        key = (gtype.name, name)
        depends = self.fields.get(key)
        if depends is None:
            depends = self.fields[key] = field_depends(gtype, name)
        return depends

    def possible(self, named) -> frozenset:
        if is_abstract_type(named):
            return frozenset(self.schema.get_possible_types(named))
        return frozenset((named,)) if isinstance(named, GraphQLObjectType) else frozenset()

    def known(self, operation) -> Depends | None:
        entry = self.operations.get(id(operation))
        return entry[1] if entry is not None and entry[0]() is operation else None

    def remember(self, operation, depends: Depends) -> None:
        key, operations = id(operation), self.operations
        ref = weakref.ref(operation, lambda _ref: operations.pop(key, None))
        operations[key] = (ref, depends)


def _facts(schema: GraphQLSchema) -> _SchemaFacts:
    facts = getattr(schema, "_pcg_sharing", None)
    if facts is None:
        facts = schema._pcg_sharing = _SchemaFacts(schema)
    return facts


def operation_depends(schema: GraphQLSchema, operation, fragments: dict) -> Depends:
    """The most any field of `operation` depends on, through every fragment and every type
    an abstract selection may turn out to be. Computed once per operation node."""
    facts = _facts(schema)
    depends = facts.known(operation)
    if depends is None:
        root = schema.get_root_type(operation.operation)
        depends = _Walk(facts, fragments).selections(facts.possible(root), operation.selection_set)
        facts.remember(operation, depends)
    return depends


class _Walk:
    """@skip/@include are ignored: a field that may be selected counts."""

    def __init__(self, facts: _SchemaFacts, fragments: dict) -> None:
        self.facts = facts
        self.fragments = fragments
        self.memo: dict[tuple[str, frozenset], Depends] = {}  # each fragment once per type set

    def selections(self, types: frozenset, selection_set) -> Depends:
        worst = EVENT
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                depends = self.field(types, selection)
            elif isinstance(selection, InlineFragmentNode):
                depends = self.selections(self.narrow(types, selection.type_condition),
                                          selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                depends = self.spread(types, selection.name.value)
            else:
                depends = VIEWER
            worst = max(worst, depends)
            if worst is VIEWER:
                break
        return worst

    def field(self, types: frozenset, node: FieldNode) -> Depends:
        name = node.name.value
        worst = EVENT
        returned: set = set()
        for gtype in types:
            worst = max(worst, self.facts.field(gtype, name))
            if name in gtype.fields:
                returned |= self.facts.possible(get_named_type(gtype.fields[name].type))
        if node.selection_set is not None and worst is not VIEWER:
            worst = max(worst, self.selections(frozenset(returned), node.selection_set))
        return worst

    def spread(self, types: frozenset, name: str) -> Depends:
        fragment = self.fragments.get(name)
        if fragment is None:
            return VIEWER
        types = self.narrow(types, fragment.type_condition)
        key = (name, types)
        if key not in self.memo:
            self.memo[key] = VIEWER  # a cycle (rejected by validation anyway) stays unshared
            self.memo[key] = self.selections(types, fragment.selection_set)
        return self.memo[key]

    def narrow(self, types: frozenset, condition) -> frozenset:
        if condition is None:
            return types
        named = self.facts.schema.get_type(condition.name.value)
        return types & self.facts.possible(named) if named is not None else frozenset()


# -- the shared execution -------------------------------------------------------------------


def mark(typed: Any, event: Any, signature: tuple, viewer: Any = None) -> Any:
    """Let subscribers of `event` share the execution of `typed` when their answers cannot
    differ: `signature` is what ROLES fields read of the viewer; `viewer` (the access layer's
    Viewer) keys selections with VIEWER fields; without it, those are not shared."""
    typed._share = (event.__dict__.setdefault("_pcg_results", {}), signature, viewer)
    return typed


def share_key(executor, payload: Any) -> tuple | None:
    share = getattr(payload, "_share", None)
    operation = executor.operation
    if share is None or operation.loc is None:
        return None
    store, signature, viewer = share
    depends = operation_depends(executor.schema, operation, executor.fragments)
    if depends is EVENT:
        signature = ()
    elif depends is VIEWER:
        if viewer is None:
            return None
        signature = (signature, viewer.membership_key())
    values = executor.variable_values
    coerced = getattr(values, "coerced", values)  # graphql-core 3.3: VariableValues
    try:
        variables = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        return None
    name = operation.name.value if operation.name else None
    return store, (operation.loc.source.body, name, variables, signature)


def execute_shared(executor, execute, serially):
    """`execute(serially)` once per key; errors are never shared (each recomputes)."""
    store, key = executor.share
    pending = store.get(key)
    if pending is None:
        result = execute(serially)
        if isawaitable(result):
            store[key] = asyncio.ensure_future(result)
            return store[key]
        if not result.errors:
            store[key] = result
        return result
    if isinstance(pending, asyncio.Future):
        return _reuse(pending, execute, serially)
    return pending


async def _reuse(future: asyncio.Future, execute, serially):
    result = await asyncio.shield(future)
    if result.errors:
        own = execute(serially)
        return await own if isawaitable(own) else own
    return result
