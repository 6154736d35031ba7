"""One execution of a subscription event for every subscriber who would get the same answer.

A board event reaches every subscriber of the board; each used to run the same selection
over the same event. Subscribers whose answer cannot differ share one execution: same event
object (a live event is decoded once per process and handed to every local subscriber),
same document and variables, and the same *signature* — what the answer may depend on
beyond the event. For board events that is the viewer's project and organization role
(`viewerRole` fields, admin-only lists); NORA events are only ever seen by their owner.

A field added to an event type must keep this true: nothing in an event's answer may
depend on who asks beyond the signature.
"""

from __future__ import annotations

import asyncio
from inspect import isawaitable
from typing import Any

import orjson


def mark(typed: Any, event: Any, signature: tuple) -> Any:
    """Let subscribers of `event` with the same `signature` share the execution of `typed`."""
    typed._share = (event.__dict__.setdefault("_pcg_results", {}), signature)
    return typed


def share_key(executor, payload: Any) -> tuple | None:
    share = getattr(payload, "_share", None)
    operation = executor.operation
    if share is None or operation.loc is None:
        return None
    store, signature = share
    values = executor.variable_values
    coerced = getattr(values, "coerced", values)  # graphql-core 3.3: VariableValues
    try:
        variables = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        return None
    return store, (operation.loc.source.body, variables, signature)


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
