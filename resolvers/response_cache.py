"""Where whole query answers are kept (schema/caching.py decides what and under which key).

A key already names the versions of everything its answer read, so a stored answer never
needs invalidating: a write moves the versions, later requests compute other keys, and the old
entry ages out. Expiry here only bounds memory, never correctness.

- `MemoryStore`: an LRU in this process, bounded by entries and by bytes (the embedded
  default, and any instance without Redis).
- `RedisStore`: shared by every instance when PCG_BROADCAST_URL is redis://. A Redis that
  fails or is slow is skipped for a few seconds with one warning; the request runs as if
  nothing were cached, and no error reaches the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson
import redis.asyncio as redis

from resolvers import metrics

log = logging.getLogger("pcg.cache")

_REDIS_TIMEOUT = 0.2  # seconds: a cache that answers slower than the database is no cache
_REDIS_BACKOFF = 5.0  # seconds without Redis after a failure
_PREFIX = "pcg:answer:"


class Store(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def put(self, key: str, data: Any, size: int) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    async def get(self, key: str) -> Any | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    async def put(self, key: str, data: Any, size: int) -> None:
        if size > self.max_bytes // 4:
            return  # one answer may not take the room of many
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (data, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    def __init__(self, url: str, ttl_seconds: int) -> None:
        self.ttl = ttl_seconds
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=_REDIS_TIMEOUT, socket_timeout=_REDIS_TIMEOUT
        )
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._available():
            log.warning("response cache: Redis unavailable (%s); answering uncached for %.0f s", exc, _REDIS_BACKOFF)
        self._down_until = time.monotonic() + _REDIS_BACKOFF
        metrics.RESPONSE_CACHE.labels("error").inc()

    async def get(self, key: str) -> Any | None:
        if not self._available():
            return None
        try:
            raw = await asyncio.wait_for(self._client.get(_PREFIX + key), _REDIS_TIMEOUT)
        except (TimeoutError, OSError, redis.RedisError) as exc:
            self._failed(exc)
            return None
        return None if raw is None else orjson.loads(raw)

    async def put(self, key: str, data: Any, size: int) -> None:
        if not self._available():
            return
        try:
            await asyncio.wait_for(
                self._client.set(_PREFIX + key, orjson.dumps(data), ex=self.ttl), _REDIS_TIMEOUT
            )
        except (TimeoutError, OSError, redis.RedisError) as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._client.aclose()


def make_store(broadcast_url: str, *, max_entries: int, max_bytes: int, ttl_seconds: int) -> Store:
    if broadcast_url.startswith(("redis://", "rediss://")):
        return RedisStore(broadcast_url, ttl_seconds)
    return MemoryStore(max_entries, max_bytes)
