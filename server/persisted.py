"""Apollo's automatic persisted queries: a client sends the SHA-256 of a document; the server
answers PERSISTED_QUERY_NOT_FOUND until the client has sent the document once with its hash.

Documents are kept in Redis when the broadcast runs on Redis (so every instance knows a hash
any of them has seen), in a bounded in-process LRU otherwise. A document is stored only after
its hash is checked, and never larger than the document limit, so the store cannot be used to
park arbitrary data. A Redis failure is a miss, never an error: the client then sends the
document, which always works.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from urllib.parse import urlparse

from resolvers.documents import sha256

log = logging.getLogger("pcg.apq")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MEMORY_ENTRIES = 10_000
# Documents can be 100,000 characters: the count alone would let a client park a gigabyte.
MEMORY_CHARS = 16_000_000
REDIS_TTL_SECONDS = 7 * 24 * 3600


class PersistedQueryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PersistedQueries:
    def __init__(self, broadcast_url: str, max_chars: int) -> None:
        self.max_chars = max_chars
        self.memory: OrderedDict[str, str] = OrderedDict()
        self.memory_chars = 0
        self.redis = None
        if urlparse(broadcast_url).scheme in ("redis", "rediss"):
            import redis.asyncio as redis

            self.redis = redis.from_url(broadcast_url, socket_timeout=1, socket_connect_timeout=1)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def resolve(self, query: str | None, extensions: dict | None, fallback=None) -> str | None:
        """The document to run: `query` itself, or the one stored under the hash (or known to
        `fallback(hash)`: the trusted documents)."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError("PERSISTED_QUERY_NOT_SUPPORTED", "Only persisted queries of version 1 are supported")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise PersistedQueryError("BAD_REQUEST", "`sha256Hash` must be 64 lowercase hex digits")
        if query is not None:
            if sha256(query) != digest:
                raise PersistedQueryError("BAD_REQUEST", "provided sha does not match query")
            if len(query) <= self.max_chars:
                await self._store(digest, query)
            return query
        found = await self._load(digest)
        if found is None and fallback is not None:
            found = fallback(digest)
        if found is None:
            # Apollo's PersistedQueryLink retries with the document on exactly this message.
            raise PersistedQueryError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return found

    async def _store(self, digest: str, query: str) -> None:
        self._remember(digest, query)
        if self.redis is not None:
            try:
                await self.redis.set(f"pcg:apq:{digest}", query, ex=REDIS_TTL_SECONDS)
            except Exception as error:  # noqa: BLE001 - a cache, never a failure
                log.warning("persisted query not stored in Redis: %s", error)

    async def _load(self, digest: str) -> str | None:
        found = self.memory.get(digest)
        if found is not None:
            self.memory.move_to_end(digest)
            return found
        if self.redis is None:
            return None
        try:
            raw = await self.redis.get(f"pcg:apq:{digest}")
        except Exception as error:  # noqa: BLE001
            log.warning("persisted query lookup in Redis failed: %s", error)
            return None
        if raw is None:
            return None
        query = raw.decode()
        if sha256(query) != digest:  # a foreign or corrupted entry
            return None
        self._remember(digest, query)
        return query

    def _remember(self, digest: str, query: str) -> None:
        if digest in self.memory:
            self.memory.move_to_end(digest)
            return
        self.memory[digest] = query
        self.memory_chars += len(query)
        while len(self.memory) > MEMORY_ENTRIES or self.memory_chars > MEMORY_CHARS:
            _, dropped = self.memory.popitem(last=False)
            self.memory_chars -= len(dropped)
