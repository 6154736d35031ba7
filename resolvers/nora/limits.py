"""NORA's limits: a per-user message rate limit and a per-organization daily token quota.

Rate limit: a token bucket per user, 20 messages per minute (capacity 20, refilled at
20/60 per second, so bursts of 20 are fine and the sustained rate is 20 a minute).
- PCG_BROADCAST_URL=redis://...: one bucket per user in Redis, shared by every instance,
  updated atomically by a small Lua script that reads Redis' own clock (instances' clocks
  may differ). If Redis cannot be reached, the instance falls back to its local bucket
  rather than refusing NORA altogether.
- Otherwise (memory://, postgres://): an in-process bucket per user; with several
  instances on PostgreSQL each instance enforces the limit on its own.

Quota: tokens per organization per UTC day by plan (free/pro configurable, enterprise
unlimited), summed from the usage ledger and checked before any provider call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tortoise.functions import Sum

from models import NoraUsageEntry, Organization, Plan, UsageKind
from resolvers.errors import QuotaExceeded, RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from server.settings import Settings

log = logging.getLogger("pcg.nora")

MESSAGES_PER_MINUTE = 20


class TokenBucket:
    """In-process buckets: key -> (tokens, last refill on the monotonic clock)."""

    def __init__(self, capacity: int = MESSAGES_PER_MINUTE, per_seconds: float = 60.0) -> None:
        self.capacity = capacity
        self.rate = capacity / per_seconds
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float:
        """Take one token: 0 when allowed, else the seconds until one is available."""
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.capacity), now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket untouched for a full refill period is full again: drop it.
        if len(self._buckets) > 10_000:
            horizon = self.capacity / self.rate
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < horizon}

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass


# KEYS[1] bucket; ARGV capacity, refill rate per second. Returns {allowed, retry-after text}.
_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


class RedisTokenBucket:
    def __init__(self, url: str, capacity: int = MESSAGES_PER_MINUTE, per_seconds: float = 60.0,
                 prefix: str = "pcg:nora:rate:") -> None:
        self.url = url
        self.capacity = capacity
        self.rate = capacity / per_seconds
        self.prefix = prefix
        self.local = TokenBucket(capacity, per_seconds)
        self._redis: Redis | None = None
        self._script: AsyncScript | None = None
        self._warned_at = 0.0

    def _connect(self) -> AsyncScript:
        from redis import asyncio as redis

        self._redis = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        script = self._script = self._redis.register_script(_BUCKET_LUA)
        return script

    async def connect(self) -> None:
        self._connect()

    async def take(self, key: str) -> float:
        script = self._script or self._connect()
        try:
            allowed, retry = await script(keys=[self.prefix + key], args=[self.capacity, self.rate])
        except Exception as exc:  # noqa: BLE001 - Redis down: limit locally rather than not at all
            if time.monotonic() - self._warned_at > 30:
                self._warned_at = time.monotonic()
                log.warning("NORA rate limiter: Redis unavailable (%s); limiting per instance", exc)
            return await self.local.take(key)
        return 0.0 if int(allowed) == 1 else float(retry)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def make_rate_limiter(broadcast_url: str) -> TokenBucket | RedisTokenBucket:
    if urlparse(broadcast_url).scheme in ("redis", "rediss"):
        return RedisTokenBucket(broadcast_url)
    return TokenBucket()


async def check_rate(limiter: TokenBucket | RedisTokenBucket, user_id: int) -> None:
    wait = await limiter.take(str(user_id))
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"Too many NORA messages: at most {MESSAGES_PER_MINUTE} a minute. Try again in {seconds} s.",
            retryAfter=seconds,
        )


# -- the daily token quota ------------------------------------------------------------------------


def daily_quota(settings: Settings, plan: Plan) -> int | None:
    """Tokens a day for the plan; None means unlimited."""
    if plan is Plan.ENTERPRISE:
        return None
    return settings.nora_quota_pro if plan is Plan.PRO else settings.nora_quota_free


def day_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass
class UsageReport:
    organization: Organization
    day: date
    tokens_used: int
    messages_sent: int
    token_quota: int | None
    resets_at: datetime

    @property
    def tokens_remaining(self) -> int | None:
        return None if self.token_quota is None else max(0, self.token_quota - self.tokens_used)

    @property
    def exceeded(self) -> bool:
        return self.token_quota is not None and self.tokens_used >= self.token_quota


async def usage_today(settings: Settings, organization: Organization) -> UsageReport:
    start, end = day_bounds()
    rows = (
        await NoraUsageEntry.filter(organization_id=organization.id, created_at__gte=start)
        .annotate(total=Sum("amount"))
        .group_by("kind")
        .values_list("kind", "total")
    )
    totals = {UsageKind(kind): int(total or 0) for kind, total in rows}
    return UsageReport(
        organization=organization,
        day=start.date(),
        tokens_used=totals.get(UsageKind.TOKENS, 0),
        messages_sent=totals.get(UsageKind.MESSAGES, 0),
        token_quota=daily_quota(settings, organization.plan),
        resets_at=end,
    )


async def check_quota(settings: Settings, organization_id: int) -> None:
    organization = await Organization.get(id=organization_id)
    report = await usage_today(settings, organization)
    if report.exceeded:
        raise QuotaExceeded(
            f"Your organization has used its {report.token_quota:,} NORA tokens for today "
            f"({organization.plan.value} plan); the quota resets at midnight UTC.",
            quota=report.token_quota,
            used=report.tokens_used,
            resetsAt=report.resets_at.isoformat(),
        )
