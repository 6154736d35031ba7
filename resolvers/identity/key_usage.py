"""ApiKey.lastUsedAt: written when a key authenticates (an HTTP request, a websocket's
connection_init, the audit CSV export), at most once a minute per key.

The minute is judged on the row authentication has just read (so it holds across processes
and instances: a use within a minute of any instance's write writes nothing and costs no
statement), and on this process's own recent writes (so a burst of concurrent first uses
sends one UPDATE, not one each). The UPDATE is conditional as well: two instances racing
write once. It runs on its own, before the operation executes: never inside a write's
transaction. A database failure here is logged and the request goes on; it is only a
timestamp.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from models import ApiKey
from resolvers.errors import unavailable_from

log = logging.getLogger("pcg.auth")

THROTTLE = timedelta(minutes=1)
# key hash -> when this process last wrote (or is writing) its lastUsedAt. The hash, not the
# id: it is never reused, not even by another database (each test has its own).
_written: dict[str, datetime] = {}


def clock() -> datetime:
    """Now; tests move it instead of waiting a minute."""
    return datetime.now(UTC)


async def record_use(api_key: ApiKey) -> None:
    now = clock()
    cutoff = now - THROTTLE
    if api_key.last_used_at is not None and api_key.last_used_at > cutoff:
        return
    mine = _written.get(api_key.key_hash)
    if mine is not None and mine > cutoff:
        return
    for key in [k for k, at in _written.items() if at <= cutoff]:
        del _written[key]  # at most one entry per key used in the last minute
    _written[api_key.key_hash] = now
    try:
        await ApiKey.filter(
            Q(id=api_key.id) & (Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
        ).update(last_used_at=now)
    except Exception as error:
        if unavailable_from(error) is None:
            raise
        _written.pop(api_key.key_hash, None)  # the next use tries again
        log.warning("could not record the use of API key %s: %s", api_key.id, error)
