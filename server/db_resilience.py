"""The one adapter between Tortoise's asyncpg client and a database that fails.

A Tortoise engine module (`"engine": "server.db_resilience"`): Tortoise imports it and builds
`client_class` with the connection's credentials. What it adds to tortoise 1.1.9's
`AsyncpgDBClient`:

- a bounded wait for a pooled connection (`acquire_timeout`): an exhausted pool answers
  TimeoutError (a 503) instead of queueing the request for ever;
- a dead pooled connection is never handed back to the pool: a connection that failed with a
  connection-level error (or a timeout, after which asyncpg would wait on the cancellation
  of a statement the partitioned server never sees) is terminated before release;
- outside transactions, a statement that failed on a dead connection is retried once on a
  fresh one: reads always, writes only when the statement provably never left the client
  (asyncpg refused to send it on a connection it already knew to be closed or broken);
- a transaction whose BEGIN fails on a dead connection starts again on a fresh one (nothing
  was applied), and a transaction whose connection died is not rolled back over it (the
  server already did);
- a released connection goes back to the pool without asyncpg's reset statement (see
  `_keep_session`): one round trip per statement, not two.

It relies on these Tortoise internals, pinned by tests/test_db_faults.py::
test_tortoise_seams_the_adapter_relies_on: `AsyncpgDBClient.create_pool`, `.acquire_connection`,
`._in_transaction`, `._pool`, `._pool_init_lock`, `PoolConnectionWrapper.connection`,
`TransactionContextPooled` (`client._parent`, `client._connection`, `begin`, `token`), the
statement methods `execute_query`, `execute_query_dict`, `execute_insert`, `execute_many`.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import PoolConnectionWrapper, TransactionContextPooled
from tortoise.connection import get_connections

log = logging.getLogger("pcg.db")

DEFAULT_ACQUIRE_TIMEOUT = 5.0


def connection_lost(error: BaseException) -> bool:
    """The connection under the operation is dead: retrying on it is pointless."""
    if isinstance(error, (asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError,
                          ConnectionError, TimeoutError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        # 57P01 admin shutdown (pg_terminate_backend), 57P02 crash shutdown, 57P03 cannot connect now.
        return error.sqlstate in ("57P01", "57P02", "57P03")
    return never_sent(error)


def never_sent(error: BaseException) -> bool:
    """asyncpg refused the operation before writing a byte: the statement was not applied.

    "connection is closed": it had seen the connection close. "cannot switch to state": the
    server's termination notice arrived while the connection sat idle in the pool, and the
    protocol refuses a new operation before sending it."""
    text = str(error)
    return (
        (isinstance(error, asyncpg.InterfaceError) and "connection is closed" in text)
        or (isinstance(error, asyncpg.InternalClientError) and "cannot switch to state" in text)
    )


def _is_read(query: str) -> bool:
    return query.lstrip().upper().startswith(("SELECT", "SHOW"))


async def _discard(pool, connection) -> None:
    """Terminate a dead connection, and expire the rest of the pool: one dead connection
    means a restarted or partitioned server or a mass termination, and its idle siblings are
    dead too without knowing it (asyncpg sees the termination notice only when it next
    uses the connection). Each is replaced by a fresh one at its next checkout."""
    try:
        connection.terminate()
    except asyncpg.InterfaceError:
        pass  # asyncpg saw it close and already took it back
    await pool.expire_connections()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a released connection: nothing beyond what asyncpg always does
    first (roll back a transaction left open, drop listeners). Its default sends one more
    statement per release (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`): a second round trip for every statement outside a transaction, 7% of a small
    request's CPU and as much latency. The state it clears is state this application never
    creates on these connections: settings are fixed at connect (server_settings), locks are
    transaction-scoped, no cursor outlives its transaction, LISTEN has its own connection
    (resolvers/broadcast.py). tests/test_db_session_state.py holds the code to that."""


class _WaitingPool:
    """The asyncpg pool, with a bounded wait for a free connection."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None):
        if timeout is None and self._pool.get_idle_size():
            # A connection is free, so nothing to wait for (a holder that must reconnect is
            # bounded by the connect timeout): asyncpg's timeout would wrap the checkout in a
            # task of its own, 8% of a small request on PostgreSQL.
            return self._pool.acquire()
        return self._pool.acquire(timeout=self._acquire_timeout if timeout is None else timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _DiscardingConnectionWrapper(PoolConnectionWrapper):
    """Tortoise's pool checkout; a connection that died is terminated, not pooled again."""

    __slots__ = ()

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_val is not None and self.connection is not None and connection_lost(exc_val):
            await _discard(self.client._pool, self.connection)
        await super().__aexit__(exc_type, exc_val, exc_tb)


class _RetryingTransactionContext(TransactionContextPooled):
    __slots__ = ()

    async def __aenter__(self):
        await self.ensure_connection()
        parent = self.client._parent
        for attempt in (1, 2):
            connection = await parent._pool.acquire()
            self.client._connection = connection
            try:
                await self.client.begin()
            except BaseException as error:
                dead = connection_lost(error)
                if dead:
                    await _discard(parent._pool, connection)
                await parent._pool.release(connection)
                if attempt == 2 or not dead:
                    raise
                log.info("transaction began on a dead pooled connection (%s); retrying on a fresh one", error)
                continue
            break
        # Only once BEGIN succeeded: a failed __aenter__ gets no __aexit__ to reset it.
        self.token = get_connections().set(self.connection_name, self.client)
        return self.client

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_val is not None and connection_lost(exc_val) and not self.client._finalized:
            # The server rolled back when the connection died; a ROLLBACK over it would only
            # wait on the statement timeout.
            await _discard(self.client._parent._pool, self.client._connection)
            self.client._finalized = True
        await super().__aexit__(exc_type, exc_val, exc_tb)


class ResilientAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args: Any, acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = float(acquire_timeout)

    async def create_pool(self, **kwargs: Any):
        kwargs.setdefault("reset", _keep_session)
        return _WaitingPool(await super().create_pool(**kwargs), self.acquire_timeout)

    def acquire_connection(self) -> PoolConnectionWrapper:
        return _DiscardingConnectionWrapper(self, self._pool_init_lock)

    def _in_transaction(self):
        return _RetryingTransactionContext(TransactionWrapper(self), self._pool_init_lock)

    async def execute_query(self, query: str, values: list | None = None):
        return await self._once_more(_is_read(query), super().execute_query, query, values)

    async def execute_query_dict(self, query: str, values: list | None = None):
        return await self._once_more(_is_read(query), super().execute_query_dict, query, values)

    async def execute_insert(self, query: str, values: list):
        return await self._once_more(False, super().execute_insert, query, values)

    async def execute_many(self, query: str, values: list) -> None:
        return await self._once_more(False, super().execute_many, query, values)

    async def _once_more(self, is_read: bool, run, *args: Any):
        try:
            return await run(*args)
        # Not TimeoutError: a statement that ran out of its budget is not given another.
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                ConnectionError) as error:
            if not (never_sent(error) or (is_read and connection_lost(error))):
                raise
            log.info("statement failed on a dead pooled connection (%s); retrying once on a fresh one", error)
        return await run(*args)


client_class = ResilientAsyncpgClient

__all__ = ["ResilientAsyncpgClient", "client_class", "connection_lost", "never_sent"]
