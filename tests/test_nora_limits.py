"""The rate limiter's two backends: in-process, and Redis shared by several instances."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from resolvers.nora.limits import RedisTokenBucket, TokenBucket

REDIS_URL = os.environ.get("PCG_TEST_REDIS_URL", "redis://127.0.0.1:6379")


async def test_in_process_bucket_allows_a_burst_then_refills():
    bucket = TokenBucket(capacity=3, per_seconds=0.3)  # one token back every 0.1 s
    assert [await bucket.take("u1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await bucket.take("u1")
    assert 0 < wait <= 0.1
    assert await bucket.take("u2") == 0.0  # per key
    await asyncio.sleep(wait + 0.01)
    assert await bucket.take("u1") == 0.0


@pytest.fixture
async def redis_url():
    from redis import asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is required on CI: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    finally:
        await client.aclose()
    return REDIS_URL


async def test_redis_bucket_is_shared_by_instances(redis_url):
    prefix = f"pcg:test:{uuid.uuid4().hex}:"
    a = RedisTokenBucket(redis_url, prefix=prefix)
    b = RedisTokenBucket(redis_url, prefix=prefix)
    try:
        waits = [await (a if i % 2 else b).take("42") for i in range(20)]
        assert waits == [0.0] * 20
        denied = await b.take("42")
        assert 2.0 < denied <= 3.0  # 20 a minute: the next token is ~3 s away
        assert await a.take("43") == 0.0
    finally:
        await a.close()
        await b.close()


async def test_redis_down_falls_back_to_a_local_bucket():
    bucket = RedisTokenBucket("redis://127.0.0.1:1", capacity=2, per_seconds=60)
    try:
        assert [await bucket.take("7") for _ in range(2)] == [0.0, 0.0]
        assert await bucket.take("7") > 0
    finally:
        await bucket.close()
