"""The schema documents itself, and changes to it are deliberate.

- Every type, field, argument, input field and enum value a client can introspect has a
  description; every deprecation says why and what to use instead.
- The custom scalars say which format they follow (`@specifiedBy`).
- graphql-inspector diffs schema.graphql against the last released schema
  (tests/tools/schema-baseline.graphql): a breaking change fails unless it is acknowledged in
  tests/tools/acknowledged-breaking-changes.txt.
"""

from __future__ import annotations

from pathlib import Path

from graphql import introspection_from_schema, specified_scalar_types

from schema.root import schema
from server.settings import PROJECT_ROOT
from tests.schema_tools import TOOLS, inspector_diff

BASELINE = TOOLS / "schema-baseline.graphql"
ACKNOWLEDGED = TOOLS / "acknowledged-breaking-changes.txt"
# graphql-core's reason for a bare @deprecated: it tells a client nothing.
DEFAULT_REASON = "No longer supported"


def _introspection() -> dict:
    """The schema as a client sees it through introspection (descriptions, deprecated
    elements and specifiedByURL included)."""
    return introspection_from_schema(
        schema._schema, descriptions=True, specified_by_url=True, input_value_deprecation=True
    )["__schema"]


def _undocumented(tree: dict) -> list[str]:
    missing: list[str] = []

    def check(where: str, element: dict) -> None:
        if not (element.get("description") or "").strip():
            missing.append(where)
        if element.get("isDeprecated") and (element.get("deprecationReason") or DEFAULT_REASON) == DEFAULT_REASON:
            missing.append(f"{where} (deprecated without a reason)")

    for kind in tree["types"]:
        name = kind["name"]
        if name.startswith("__") or name in specified_scalar_types:
            continue
        check(name, kind)
        for field in kind.get("fields") or []:
            check(f"{name}.{field['name']}", field)
            for arg in field["args"]:
                check(f"{name}.{field['name']}({arg['name']})", arg)
        for field in kind.get("inputFields") or []:
            check(f"{name}.{field['name']}", field)
        for value in kind.get("enumValues") or []:
            check(f"{name}.{value['name']}", value)
    builtin = {"include", "skip", "deprecated", "specifiedBy", "oneOf"}
    for directive in tree["directives"]:
        if directive["name"] not in builtin:
            check(f"@{directive['name']}", directive)
            for arg in directive["args"]:
                check(f"@{directive['name']}({arg['name']})", arg)
    return missing


def test_every_type_field_argument_and_enum_value_is_described():
    tree = _introspection()
    missing = _undocumented(tree)
    assert not missing, f"{len(missing)} schema elements have no description:\n  " + "\n  ".join(missing)
    # The walk really reached every kind of element.
    kinds = {t["kind"] for t in tree["types"]}
    assert {"OBJECT", "INTERFACE", "INPUT_OBJECT", "ENUM", "SCALAR"} <= kinds


def test_the_walk_names_what_is_missing():
    tree = _introspection()
    task = next(t for t in tree["types"] if t["name"] == "Task")
    title = next(f for f in task["fields"] if f["name"] == "title")
    title["description"] = None
    title["isDeprecated"], title["deprecationReason"] = True, DEFAULT_REASON
    subtasks = next(f for f in task["fields"] if f["name"] == "subtasks")
    next(a for a in subtasks["args"] if a["name"] == "first")["description"] = " "
    status = next(t for t in tree["types"] if t["name"] == "TaskStatus")
    status["enumValues"][0]["description"] = ""
    assert _undocumented(tree) == [
        "Task.title", "Task.title (deprecated without a reason)", "Task.subtasks(first)", "TaskStatus.TODO",
    ]


def test_custom_scalars_are_specified_by_their_formats():
    scalars = {t["name"]: t for t in _introspection()["types"] if t["kind"] == "SCALAR"}
    custom = {name: t["specifiedByURL"] for name, t in scalars.items() if name not in specified_scalar_types}
    assert custom == {
        "DateTime": "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
        "Date": "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
        "JSON": "https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf",
    }
    sdl = (PROJECT_ROOT / "schema.graphql").read_text()
    assert 'scalar DateTime @specifiedBy(url: "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6")' in sdl


# -- breaking changes -------------------------------------------------------------------------


def _acknowledged() -> set[str]:
    lines = (line.strip() for line in ACKNOWLEDGED.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def _unacknowledged(diff: dict, acknowledged: set[str]) -> tuple[list[str], list[str]]:
    """(breaking changes not acknowledged, acknowledgements that match no change)."""
    breaking = [change["message"] for change in diff["breaking"]]
    return [m for m in breaking if m not in acknowledged], sorted(acknowledged - set(breaking))


def test_schema_has_no_unacknowledged_breaking_change():
    diff = inspector_diff(BASELINE, PROJECT_ROOT / "schema.graphql")
    new, stale = _unacknowledged(diff, _acknowledged())
    assert not new, (
        "schema.graphql breaks clients of the released schema. Deprecate instead "
        "(@deprecated(reason: ...)), or, if it is meant, add these lines to "
        f"{ACKNOWLEDGED.relative_to(PROJECT_ROOT)} and say so in CHANGELOG.md:\n" + "\n".join(new)
    )
    assert not stale, f"acknowledged breaking changes that no longer happen (remove them): {stale}"


def test_a_removed_field_is_caught_until_acknowledged(tmp_path: Path):
    """The gate itself, with the real tool: a baseline that still has a field the schema
    dropped is a breaking change, and acknowledging exactly that line lets it through."""
    current = (PROJECT_ROOT / "schema.graphql").read_text()
    assert current.count("type Query {\n") == 1
    released = tmp_path / "released.graphql"
    released.write_text(current.replace("type Query {\n", "type Query {\n  legacyField: String\n"))
    diff = inspector_diff(released, PROJECT_ROOT / "schema.graphql")

    message = "Field 'legacyField' was removed from object type 'Query'"
    assert [c["message"] for c in diff["breaking"]] == [message]
    assert _unacknowledged(diff, set()) == ([message], [])
    assert _unacknowledged(diff, {message}) == ([], [])
    assert _unacknowledged(diff, {message, "Field 'x' was removed"}) == ([], ["Field 'x' was removed"])
