"""Garbage-collector settings for a server process.

A large read (a 500-task board) allocates tens of thousands of short-lived containers;
with CPython's default thresholds (700, 10, 10) they trigger a gen-0 collection every few
hundred allocations, survivors of an in-flight request get promoted, and every few requests
a full collection walks everything the process holds, the imported modules and the schema
included: 40-60 ms pauses, about 3.6 ms of CPU per board on average (bench/board.py).
Freezing what exists once the app has started takes those long-lived objects out of every
collection, and a larger gen-0 threshold lets most request garbage die by reference count
before a collection sees it: about 0.6 ms per board, pauses under 25 ms (measured with
gc.callbacks on the 2-core machine). Memory is still freed by reference counting; only
cycles wait for the less frequent collections.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)


def tune() -> None:
    """Raise the thresholds; freeze the objects alive now, once per process (a test run
    that starts many apps freezes only the first one's)."""
    gc.set_threshold(*THRESHOLDS)
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
