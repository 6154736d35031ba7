"""Counting the SQL statements Tortoise sends.

Both backends log one DEBUG record per statement on the `tortoise.db_client` logger (the query
text is the first argument); connection and pool set-up/tear-down are logged there too and
are not statements. Transactions begun and committed through the drivers are not logged, so
a count is the number of queries, not of round trips.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from models.orm import NOT_STATEMENTS


class StatementLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith(NOT_STATEMENTS):
            return
        self.statements.append(str(record.args[0]) if record.args else message)

    @property
    def count(self) -> int:
        return len(self.statements)

    def report(self) -> str:
        return "\n".join(f"{i + 1}. {s[:300]}" for i, s in enumerate(self.statements))


@contextmanager
def count_statements():
    """Record the statements sent inside the block (arrange data before entering it)."""
    logger = logging.getLogger("tortoise.db_client")
    handler = StatementLog()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
