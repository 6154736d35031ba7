"""Rate limiting: budgets of points per fixed window, per key, in process or in Redis.

Keys: `user:<id>`, `apikey:<id>`, `ip:<address>` (anonymous) for the GraphQL budget, whose
points are each operation's static cost in hundreds of objects (`points`, as GitHub counts); `login-email:<sha256>`, `login-ip:<address>` and
`signup-ip:<address>` for the credential endpoints. A window starts at a key's first hit and
lasts `window` seconds, as GitHub's does; `X-RateLimit-Reset` is its end.

With `PCG_BROADCAST_URL=redis://...` the counters live in Redis and every instance shares
them; otherwise each process counts on its own. A Redis that cannot be reached admits the
request (a limiter must not take the API down) and logs one warning per outage.

The counters are the `limits` library's storages (its Redis storage increments and sets the
expiry in one Lua call). Its strategies are not used: `FixedWindowRateLimiter.hit` answers
only a bool and `get_window_stats` costs two more round trips that race with other hits,
while `storage.incr` returns the count after this hit atomically, which is what the headers
report. A hit that would go over the limit is given back, so a refused request spends
nothing and a client cannot lock itself out for longer than the window.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError

from models import Plan
from resolvers.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

    from resolvers.context import Context
    from server.settings import Settings

log = logging.getLogger("pcg.ratelimit")

GRAPHQL_WINDOW = 60
LOGIN_WINDOW = 15 * 60
SIGNUP_WINDOW = 60 * 60
# After a failed Redis call the limiter admits without asking Redis for this long, so an
# unreachable Redis costs one connection attempt per interval, not one per request.
RETRY_REDIS_AFTER = 2.0
# Where the ASGI middleware (server/ratelimit.py) leaves the instance's limiter.
SCOPE_KEY = "pcg.ratelimit"


OBJECTS_PER_POINT = 100


def points(cost: int | None) -> int:
    """What an operation spends: one point, plus one per 100 objects of its static cost
    (schema/limits.py), so an ordinary request is 1 point and a 500-task board about 60."""
    return 1 + (cost or 0) // OBJECTS_PER_POINT


@dataclass(frozen=True)
class Window:
    """A key's budget right after a charge (or a look, when `charged` is False)."""

    limit: int
    used: int
    reset_at: float  # epoch seconds
    cost: int = 0
    allowed: bool = True
    charged: bool = True

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


class Limiter:
    def __init__(self, url: str = "memory://", retry_redis_after: float = RETRY_REDIS_AFTER) -> None:
        self._pool: ConnectionPool | None = None
        self.storage: Storage
        if urlparse(url).scheme in ("redis", "rediss"):
            from redis import asyncio as redis

            # Short timeouts: a partitioned Redis must not hold requests, it must be skipped.
            self._pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            self.storage = RedisStorage(
                "async+" + url, wrap_exceptions=True, implementation="redispy",
                key_prefix="pcg:ratelimit",
                # limits 5 annotates **options as scalars, yet its redispy implementation
                # takes connection_pool from them (limits/aio/storage/redis/redispy.py).
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            self.storage = MemoryStorage(wrap_exceptions=True)
        self.retry_redis_after = retry_redis_after
        self._skip_until = 0.0
        self._failing = False

    @staticmethod
    def _key(key: str, window: int) -> str:
        return f"{key}/{window}"

    async def charge(self, key: str, cost: int, limit: int, window: int) -> Window:
        """Spend `cost` points of `limit` per `window` seconds, unless that would go over."""
        if time.monotonic() < self._skip_until:
            return self._unknown(limit, window, cost)
        k = self._key(key, window)
        try:
            used = await self.storage.incr(k, window, amount=cost)
            allowed = used <= limit
            if not allowed:
                await self.storage.incr(k, window, amount=-cost)
                used -= cost
            reset_at = await self.storage.get_expiry(k)
        except StorageError as error:
            self._failed(error)
            return self._unknown(limit, window, cost)
        self._recovered()
        return Window(limit=limit, used=used, reset_at=reset_at, cost=cost, allowed=allowed)

    async def give_back(self, key: str, cost: int, window: int) -> None:
        """Undo a charge (a login attempt that turned out to be a success)."""
        if time.monotonic() < self._skip_until:
            return
        try:
            if await self.storage.get(self._key(key, window)) >= cost:
                await self.storage.incr(self._key(key, window), window, amount=-cost)
        except StorageError as error:
            self._failed(error)

    async def clear(self, key: str, window: int) -> None:
        if time.monotonic() < self._skip_until:
            return
        try:
            await self.storage.clear(self._key(key, window))
        except StorageError as error:
            self._failed(error)

    def _unknown(self, limit: int, window: int, cost: int) -> Window:
        return Window(limit=limit, used=0, reset_at=time.time() + window, cost=cost, charged=False)

    def _failed(self, error: Exception) -> None:
        self._skip_until = time.monotonic() + self.retry_redis_after
        if not self._failing:
            self._failing = True
            cause = error.storage_error if isinstance(error, StorageError) else error
            log.warning("rate limiter: Redis unavailable (%s); admitting requests unlimited", cause)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate limiter: Redis reachable again; limiting resumes")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def limiter_of(ctx: Context) -> Limiter | None:
    request = getattr(ctx, "request", None)
    if request is None:
        return None
    limiter: Limiter | None = request.scope.get("state", {}).get(SCOPE_KEY)  # server/ratelimit.py
    return limiter


# -- the GraphQL budget --------------------------------------------------------------------------


def plan_limit(settings: Settings, plan: Plan) -> int:
    if plan is Plan.ENTERPRISE:
        return settings.rate_limit_enterprise
    return settings.rate_limit_pro if plan is Plan.PRO else settings.rate_limit_free


async def budget_of(ctx: Context) -> tuple[str, int]:
    """(bucket key, points per minute) of the caller. Loads the viewer's memberships, which
    carry the plans: the request would load them anyway, so this adds no statement."""
    access = ctx.access
    if not access.is_authenticated:
        return f"ip:{ctx.ip or 'unknown'}", ctx.settings.rate_limit_anonymous
    await access.load()
    key = access.api_key
    bucket = f"apikey:{key.id}" if key is not None else f"user:{access.user.id}"
    return bucket, plan_limit(ctx.settings, access.best_plan())


async def admit(ctx: Context, cost: int) -> Window | None:
    """Charge an operation's cost; None when limiting is off or there is no limiter."""
    limiter = limiter_of(ctx)
    if limiter is None or not ctx.settings.rate_limit:
        return None
    bucket, limit = await budget_of(ctx)
    return await limiter.charge(bucket, cost, limit, GRAPHQL_WINDOW)


def over_budget(window: Window) -> RateLimited:
    if window.cost > window.limit:
        message = (f"This operation costs {window.cost} points, more than your budget of "
                   f"{window.limit} a minute. Ask for fewer objects.")
    else:
        message = (f"Rate limit exceeded: {window.limit} points a minute; this operation costs "
                   f"{window.cost}. Try again in {window.retry_after} s.")
    return RateLimited(message, **limit_extensions(window))


def limit_extensions(window: Window) -> dict[str, Any]:
    return {
        "cost": window.cost,
        "limit": window.limit,
        "remaining": window.remaining,
        "resetAt": datetime.fromtimestamp(math.ceil(window.reset_at), UTC).isoformat(),
        "retryAfter": window.retry_after,
    }


def headers(window: Window) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": str(math.ceil(window.reset_at)),
        "X-RateLimit-Used": str(window.used),
        "X-RateLimit-Resource": "graphql",
    }


# -- credential endpoints ------------------------------------------------------------------------


def email_key(email: str) -> str:
    # Hashed: Redis need not hold a list of the addresses people tried.
    return "login-email:" + hashlib.sha256(email.encode()).hexdigest()


async def attempt(ctx: Context, key: str, limit: int, window: int, what: str) -> Limiter | None:
    """Count one attempt against `limit` per `window`; RATE_LIMITED when it is used up."""
    limiter = limiter_of(ctx)
    if limiter is None or limit <= 0:
        return None
    state = await limiter.charge(key, 1, limit, window)
    if not state.allowed:
        raise RateLimited(
            f"Too many {what}. Try again in {state.retry_after} s.",
            retryAfter=state.retry_after,
        )
    return limiter
