"""The documents the suite executes, for the differential test of the compiled executor.

`install()` (tests/conftest.py, once per session) records every operation that reaches
execution in this process: its text, operation name, variables and type. The differential
test (tests/test_execution_differential.py, sorted last) replays the queries and
subscriptions recorded in the same session, plus the committed corpus
(tests/corpus/documents.json) so that it covers them when run on its own.

`PCG_UPDATE_CORPUS=1 pytest` rewrites the committed corpus from what the run executed
(merged with what it held): commit the result when tests add new documents.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

CORPUS = Path(__file__).parent / "corpus" / "documents.json"
# Distinct variable sets kept per document: documents differ far more than their variables.
VARIABLES_PER_DOCUMENT = 3
MAX_VARIABLES_BYTES = 10_000

# (text, operation name) -> {"query", "operationName", "type", "variables": [...]}
recorded: dict[tuple[str, str | None], dict] = {}
# Off while the differential tests run their own documents.
enabled = True


def record(document, variables, operation_name) -> None:
    from graphql import OperationDefinitionNode

    if not enabled:
        return
    loc = document.loc
    if loc is None:
        return
    body = loc.source.body
    operation = None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        ):
            operation = definition
            break
    if operation is None:
        return
    try:
        text = orjson.dumps(variables or {})
    except TypeError:
        return
    # Hostile sizes (a megabyte of variables for a body-size test) say nothing about execution.
    variables = orjson.loads(text) if len(text) <= MAX_VARIABLES_BYTES else {}
    entry = recorded.get((body, operation_name))
    if entry is None:
        entry = recorded[(body, operation_name)] = {
            "query": body, "operationName": operation_name,
            "type": operation.operation.value, "variables": [],
        }
    if variables not in entry["variables"] and len(entry["variables"]) < VARIABLES_PER_DOCUMENT:
        entry["variables"].append(variables)


def install() -> None:
    """Record every executor built for the schema (HTTP, websockets, direct calls)."""
    from schema.root import ExecutionContext

    if getattr(ExecutionContext, "_pcg_recording", False):
        return
    original = ExecutionContext.build.__func__

    def build(cls, schema, document, root_value=None, context_value=None, raw_variable_values=None,
              operation_name=None, *args, **kwargs):
        record(document, raw_variable_values, operation_name)
        return original(cls, schema, document, root_value, context_value, raw_variable_values,
                        operation_name, *args, **kwargs)

    ExecutionContext.build = classmethod(build)
    ExecutionContext._pcg_recording = True


def committed() -> list[dict]:
    if not CORPUS.exists():
        return []
    return orjson.loads(CORPUS.read_bytes())


def documents() -> list[dict]:
    """The committed corpus and this session's recordings, queries and subscriptions."""
    merged = {(d["query"], d["operationName"]): d for d in committed()}
    for key, entry in recorded.items():
        if entry["type"] == "mutation":
            continue
        if key in merged:
            known = merged[key]["variables"]
            for variables in entry["variables"]:
                if variables not in known and len(known) < VARIABLES_PER_DOCUMENT:
                    known.append(variables)
        else:
            merged[key] = entry
    return sorted(merged.values(), key=lambda d: (d["type"], d["query"], d["operationName"] or ""))


def write_if_asked() -> None:
    if os.environ.get("PCG_UPDATE_CORPUS") != "1":
        return
    CORPUS.parent.mkdir(exist_ok=True)
    CORPUS.write_bytes(orjson.dumps(documents(), option=orjson.OPT_INDENT_2) + b"\n")
