"""Counting which operations ran compiled and which fell back to graphql-core, and why.

Per process. `bench/board.py` prints the counts; tests assert that the board, the task
views, `nodes` and subscription events never fall back.
"""

from __future__ import annotations

from collections import Counter

_counts: Counter = Counter()
_reasons: Counter = Counter()


def compiled() -> None:
    _counts["compiled"] += 1


def fell_back(reason: str) -> None:
    _counts["fallback"] += 1
    _reasons[reason] += 1


def stats() -> dict:
    """{"compiled": n, "fallback": n, "reasons": {reason: n}} since start (or reset)."""
    return {"compiled": _counts["compiled"], "fallback": _counts["fallback"], "reasons": dict(_reasons)}


def reset() -> None:
    _counts.clear()
    _reasons.clear()
