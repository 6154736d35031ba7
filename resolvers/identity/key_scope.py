"""API key scopes: a READ key runs queries and subscriptions, and no mutation at all.

The refusal is decided once per operation, before anything executes (schema/authentication.py),
so it covers every mutation there is or will be. A READ key that tries to write is either
misconfigured or in the wrong hands: the refusal is audited in the key's organization, at
most once a minute per key and process (`api_key.write_refused`), so a script retrying in a
loop cannot fill the log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from models import ApiKey, ApiKeyScope, AuditAction
from resolvers.errors import Forbidden, unavailable_from
from resolvers.identity.key_usage import clock
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

log = logging.getLogger("pcg.auth")

AUDIT_EVERY = timedelta(minutes=1)
# key hash -> when this process last audited a refusal of it (one entry per key at most)
_audited: dict[str, datetime] = {}


def may_write(key: ApiKey | None) -> bool:
    return key is None or key.scope is not ApiKeyScope.READ


def refusal() -> Forbidden:
    return Forbidden(
        "This API key is read-only (scope READ): it runs queries and subscriptions, not mutations",
        reason="API_KEY_READ_ONLY", requiredScope=ApiKeyScope.WRITE.name,
    )


async def refuse_write(ctx: Context, key: ApiKey, operation: str | None) -> Forbidden:
    """The error for a READ key's mutation, audited (throttled) first."""
    now = clock()
    last = _audited.get(key.key_hash)
    if last is None or now - last >= AUDIT_EVERY:
        for stale in [k for k, at in _audited.items() if now - at >= AUDIT_EVERY]:
            del _audited[stale]
        _audited[key.key_hash] = now
        try:
            async with unit_of_work(ctx) as work:
                await work.audit(
                    AuditAction.API_KEY_WRITE_REFUSED, key.id, organization_id=key.organization_id,
                    after={"operation": (operation or "")[:64]},
                )
        except Exception as error:
            if unavailable_from(error) is None:
                raise
            # The refusal stands either way; only its record is missing.
            _audited.pop(key.key_hash, None)
            log.warning("could not audit a refused write of API key %s: %s", key.id, error)
    return refusal()
