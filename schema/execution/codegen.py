"""A Python function per selection set: `Run.execute_fields` unrolled for one ObjectPlan.

`Run.execute_fields` loops over a plan's fields and branches on each one's kind at every
object. For a plan, the same branches always go the same way, so the loop is generated once
as straight-line code: per field, the way its value is read (an attribute, the resolver
called with exactly its parameters, a value handed over by a list resolver), the check that
lets a leaf through unchanged (a `str` for String and ID, an `int` in range for Int, an
enum member's name), and `Run.finish_field` for everything else. Per field, errors are
handled where graphql-core handles them: the resolver's own under a `try` around reading
the value (`Run.handle_field_error`), completion errors inside `Run.finish_field`; pending
awaitables are settled when an error leaves the selection set, as in graphql-core.
"""

from __future__ import annotations

import keyword
import math
from datetime import date, datetime
from operator import methodcaller

from graphql import GraphQLEnumType
from graphql.type import GraphQLBoolean, GraphQLFloat, GraphQLID, GraphQLInt, GraphQLString

from schema.execution.plan import (
    BASIC,
    DIRECT,
    GENERIC,
    IDENTITY,
    LEAF,
    NON_NULL,
    OBJECT,
    TYPENAME,
    FieldPlan,
    ObjectPlan,
)

_PLAIN = frozenset({type(None), bool, int, float, str, list, dict, tuple})
_MISSING = object()
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _attribute(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


def generate(plan: ObjectPlan, info_class: type):
    """The function `fields(run, source, path) -> dict | awaitable of dict` for `plan`."""
    namespace = {
        "PLAN": plan, "PLAIN": _PLAIN, "MISSING": _MISSING, "INFO": info_class,
        "isfinite": math.isfinite, "INT_MIN": _INT_MIN, "INT_MAX": _INT_MAX, "TN": plan.name,
    }
    lines = [
        "def fields(run, source, path):",
        "    results = {}",
        "    aw = None",
        "    is_awaitable = run.is_awaitable",
        "    try:",
    ]
    for k, field in enumerate(plan.fields):
        namespace[f"F{k}"] = field
        namespace[f"C{k}"] = field.completer
        lines.extend("        " + line for line in _field(k, field, namespace))
    if not plan.fields:
        lines.append("        pass")  # every field of the selection was for other types
    lines += [
        "    except Exception:",
        "        if aw:",
        "            run.executor.settle_in_background([results[k] for k in aw])",
        "        raise",
        "    if aw is None:",
        "        return results",
        "    return run.gather_fields(results, aw)",
    ]
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<plan {plan.name}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated code, names from the schema
    function = namespace["fields"]
    function.source = source
    return function


def _finish(k: int, key: str, field: FieldPlan | None = None) -> list[str]:
    completer = field.completer if field is not None else None
    inner = completer.of if completer is not None and completer.kind == NON_NULL else completer
    method = "finish_object" if inner is not None and inner.kind == OBJECT else "finish_field"
    return [
        f"r = run.{method}(F{k}, (path, {key!r}, TN), v)",
        f"results[{key!r}] = r",
        "if r.__class__ not in PLAIN and is_awaitable(r):",
        f"    aw = [{key!r}] if aw is None else aw + [{key!r}]",
    ]


def _identity(function) -> bool:
    """A function of one argument that returns it (Strawberry's JSON scalar)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_argcount == 1 and code.co_code == _IDENTITY.__code__.co_code


_IDENTITY = lambda v: v  # noqa: E731


def leaf_checks(k: int, leaf_type, namespace: dict) -> list[tuple[str, str]]:
    """(condition, serialized value) pairs under which a leaf type's coerce_output_value is
    known without calling it: the value itself for a `str` String or ID, an `int` in range,
    a finite `float`, a `bool`; an enum member's name; `isoformat()` for Strawberry's date and
    time scalars; the value itself for a dict or list under an identity serializer (JSON)."""
    coerce = leaf_type.coerce_output_value
    if leaf_type is GraphQLString or leaf_type is GraphQLID:
        return [("v.__class__ is str", "v")]
    if leaf_type is GraphQLBoolean:
        return [("v.__class__ is bool", "v")]
    if leaf_type is GraphQLInt:
        return [("v.__class__ is int and INT_MIN <= v <= INT_MAX", "v")]
    if leaf_type is GraphQLFloat:
        return [("v.__class__ is float and isfinite(v)", "v")]
    if isinstance(leaf_type, GraphQLEnumType) and getattr(leaf_type, "wrapped_cls", None) is not None:
        wrapped = leaf_type.wrapped_cls
        namespace[f"E{k}"] = wrapped
        # Each member's name, asked of the type itself once.
        namespace[f"N{k}"] = {member: coerce(member) for member in wrapped}
        return [(f"v.__class__ is E{k}", f"N{k}[v]")]
    if isinstance(coerce, methodcaller) and repr(coerce) == "operator.methodcaller('isoformat')":
        namespace["DATETIME"], namespace["DATE"] = datetime, date
        return [("v.__class__ is DATETIME or v.__class__ is DATE", "v.isoformat()")]
    if _identity(coerce):
        return [("v.__class__ is dict or v.__class__ is list", "v")]
    return []


def _leaf(k: int, field: FieldPlan, namespace: dict) -> list[str]:
    """Lines completing `v` when the field is a leaf: the shortcut, else finish_field."""
    key = field.key
    completer = field.completer
    leaf = completer.of if completer.kind == NON_NULL else completer
    checks = leaf_checks(k, leaf.type, namespace)
    if field.nullable:
        checks.append(("v is None", "None"))
    lines = []
    for n, (condition, value) in enumerate(checks):
        lines += [f"{'if' if n == 0 else 'elif'} {condition}:", f"    results[{key!r}] = {value}"]
    if not lines:
        return _finish(k, key)
    return [*lines, "else:", *("    " + line for line in _finish(k, key))]


def _field(k: int, field: FieldPlan, namespace: dict) -> list[str]:
    key = field.key
    path = f"(path, {key!r}, TN)"
    completer = field.completer
    inner = completer.of if completer.kind == NON_NULL else completer
    if inner.kind == LEAF:
        complete = _leaf(k, field, namespace)
    elif field.nullable:
        complete = ["if v is None:", f"    results[{key!r}] = None", "else:",
                    *("    " + line for line in _finish(k, key, field))]
    else:
        complete = _finish(k, key, field)
    kind = field.kind
    if kind == TYPENAME:
        return [f"results[{key!r}] = TN"]
    if kind == IDENTITY:
        return ["v = source", *complete]
    if field.ready_attr is not None:
        namespace[f"R{k}"] = field.ready_attr
        return [
            f"v = getattr(source, R{k}, MISSING)",
            "if v is MISSING:",
            f"    r = run.execute_field(PLAN, F{k}, source, path)",
            f"    results[{key!r}] = r",
            "    if r.__class__ not in PLAIN and is_awaitable(r):",
            f"        aw = [{key!r}] if aw is None else aw + [{key!r}]",
            "else:",
            *("    " + line for line in complete),
        ]
    if kind == BASIC:
        read = f"v = source.{field.attr}" if _attribute(field.attr) else f"v = getattr(source, F{k}.attr)"
    elif kind == DIRECT:
        by_position, source_names, info_name = field.call
        if field.is_async:
            read = f"v = run.call_direct_later(F{k}, source, {path})"
        elif field.has_args or any(not _attribute(n) for n in (*source_names, info_name or "x")):
            read = f"v = run.call_direct(F{k}, source, {path})"
        else:
            namespace[f"W{k}"] = field.wrapped
            arguments = ["source"] if by_position else []
            arguments += [f"{name}=source" for name in source_names]
            if info_name is not None:
                arguments.append(f"{info_name}=INFO(run, F{k}, {path})")
            read = f"v = W{k}({', '.join(arguments)})"
    elif kind == GENERIC:
        read = f"v = run.call_generic(F{k}, source, {path})"
    else:  # pragma: no cover - every kind is above
        raise AssertionError(kind)
    return [
        "try:",
        f"    {read}",
        "except Exception as raw_error:",
        f"    run.handle_field_error(raw_error, C{k}, F{k}, {path})",
        f"    results[{key!r}] = None",
        "else:",
        *("    " + line for line in complete),
    ]
