"""Strawberry's `Info`, built lazily.

A resolver that takes `info` mostly reads `info.context`. Strawberry builds a
GraphQLResolveInfo (eleven fields and a response path) and an Info around it for every
call; this one holds the run, the field plan and the tuple path, and builds the real
GraphQLResolveInfo (the same one graphql-core would have passed) only when something other
than `context` is read.
"""

from __future__ import annotations

from functools import cache


@cache
def lazy_info_class(info_class: type) -> type:
    """A subclass of the schema's Info class (StrawberryConfig.info_class)."""

    class LazyInfo(info_class):
        # Not the dataclass __init__: `_raw_info` is a property here.
        def __init__(self, run, field, path) -> None:
            self._pcg_run = run
            self._pcg_plan = field
            self._pcg_path = path
            self._field = field.sfield

        @property
        def _raw_info(self):
            raw = self.__dict__.get("_pcg_raw")
            if raw is None:
                raw = self.__dict__["_pcg_raw"] = self._pcg_run.build_info(self._pcg_plan, self._pcg_path)
            return raw

        @property
        def context(self):
            return self._pcg_run.context

    LazyInfo.__name__ = LazyInfo.__qualname__ = f"Lazy{info_class.__name__}"
    return LazyInfo
