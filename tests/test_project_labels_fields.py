"""createLabel, defineCustomField, and custom property values of every type."""

from __future__ import annotations

import pytest

from models import (
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    Task,
)
from tests.conftest import gid
from tests.tasks_support import (
    CREATE_LABEL,
    DEFINE_FIELD,
    UPDATE,
    assert_dense,
    audits,
    events,
    make_task,
    rejected,
    team,
    tid,
)

# -- createLabel -------------------------------------------------------------------------------


async def test_create_label(gql, factory):
    t = await team(factory)
    data = await gql.ok(
        CREATE_LABEL,
        {"i": {"projectId": t.project_gid, "name": " Bug ", "color": "#AABBCC"}},
        token=t.editor.token,
    )
    label = data["createLabel"]["label"]
    [row] = await Label.filter(project_id=t.project.id)
    assert label == {
        "id": gid("Label", row.id),
        "name": "Bug",
        "color": "#aabbcc",
        "project": {"id": t.project_gid},
    }
    assert (row.name, row.color) == ("Bug", "#aabbcc")
    [entry] = await audits("label.create")
    assert entry.after == {
        "id": row.id,
        "projectId": t.project.id,
        "name": "Bug",
        "color": "#aabbcc",
        "createdAt": row.created_at.isoformat(),
    }
    [evt] = await events(t.project)
    assert evt.type == "LabelCreated" and evt.payload == {"labelId": row.id, "label": entry.after}

    listed = await gql.ok(
        "query($p: ID!) { project(id: $p) { labels { name } } }",
        {"p": t.project_gid},
        token=t.viewer.token,
    )
    assert listed["project"]["labels"] == [{"name": "Bug"}]

    # The same name is fine in another project.
    other = await factory.project(t.org, t.owner, "Other")
    await gql.ok(
        CREATE_LABEL,
        {"i": {"projectId": gid("Project", other.id), "name": "Bug", "color": "#000000"}},
        token=t.owner.token,
    )


async def test_create_label_rejections(gql, factory):
    t = await team(factory)
    await Label.create(project=t.project, name="bug", color="#ff0000")

    def label(**i):
        return {"i": {"projectId": t.project_gid, "name": "ok", "color": "#123456", **i}}

    cases = [
        (label(name="x" * 51), "BAD_USER_INPUT", "name"),
        (label(name="   "), "BAD_USER_INPUT", "name"),
        (label(color="red"), "BAD_USER_INPUT", "color"),
        (label(color="#12345"), "BAD_USER_INPUT", "color"),
        (label(color="#GGGGGG"), "BAD_USER_INPUT", "color"),
        (label(projectId=gid("Task", 1)), "BAD_USER_INPUT", "projectId"),
        (label(name="bug"), "CONFLICT", "name"),
        (label(name="BUG"), "CONFLICT", "name"),
    ]
    for variables, code, field in cases:
        await rejected(gql, CREATE_LABEL, variables, t.editor.token, code, field)
    await rejected(gql, CREATE_LABEL, label(), t.viewer.token, "FORBIDDEN")
    outsider = await factory.user("Outsider")
    await rejected(gql, CREATE_LABEL, label(), outsider.token, "NOT_FOUND")
    await gql.ok(CREATE_LABEL, label(name="x" * 50), token=t.editor.token)


# -- defineCustomField ---------------------------------------------------------------------------


async def test_define_custom_field_then_use_it(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    data = await gql.ok(
        DEFINE_FIELD,
        {
            "i": {
                "projectId": t.project_gid,
                "key": "size",
                "name": "T-shirt size",
                "type": "SELECT",
                "options": ["S", " M ", "L"],
            }
        },
        token=t.admin.token,
    )
    field = data["defineCustomField"]["field"]
    [row] = await CustomFieldDefinition.filter(project_id=t.project.id)
    assert field == {
        "id": gid("CustomFieldDefinition", row.id),
        "key": "size",
        "name": "T-shirt size",
        "type": "SELECT",
        "options": ["S", "M", "L"],
        "required": False,
    }
    assert (row.type, row.options, row.required) == (CustomFieldType.SELECT, ["S", "M", "L"], False)
    [entry] = await audits("custom_field.create")
    assert entry.after["key"] == "size" and entry.after["options"] == ["S", "M", "L"]
    [evt] = await events(t.project)
    assert evt.type == "CustomFieldDefined" and evt.payload == {
        "fieldId": row.id,
        "field": entry.after,
    }

    listed = await gql.ok(
        "query($p: ID!) { project(id: $p) { customFields { key type options } } }",
        {"p": t.project_gid},
        token=t.viewer.token,
    )
    assert listed["project"]["customFields"] == [
        {"key": "size", "type": "SELECT", "options": ["S", "M", "L"]}
    ]

    out = await gql.ok(
        UPDATE, {"i": {"id": tid(task), "customProperties": {"size": "M"}}}, token=t.editor.token
    )
    assert out["updateTask"]["task"]["customProperties"] == {"size": "M"}

    # A plain field without options.
    await gql.ok(
        DEFINE_FIELD,
        {
            "i": {
                "projectId": t.project_gid,
                "key": "estimate",
                "name": "Estimate",
                "type": "NUMBER",
            }
        },
        token=t.owner.token,
    )
    assert_dense(await events(t.project))


async def test_define_custom_field_rejections(gql, factory):
    t = await team(factory)
    await CustomFieldDefinition.create(
        project=t.project, key="taken", name="Taken", type=CustomFieldType.TEXT
    )
    await make_task(t.project, t.owner)

    def field(**i):
        return {"i": {"projectId": t.project_gid, "key": "k", "name": "K", "type": "TEXT", **i}}

    cases = [
        (field(key="Bad Key"), "BAD_USER_INPUT", "key"),
        (field(key="1abc"), "BAD_USER_INPUT", "key"),
        (field(key="k" * 65), "BAD_USER_INPUT", "key"),
        (field(name=" "), "BAD_USER_INPUT", "name"),
        (field(name="n" * 101), "BAD_USER_INPUT", "name"),
        (field(type="SELECT"), "BAD_USER_INPUT", "options"),
        (field(type="MULTI_SELECT", options=[]), "BAD_USER_INPUT", "options"),
        (field(type="SELECT", options=["a", "a"]), "BAD_USER_INPUT", "options"),
        (field(type="SELECT", options=["a", " "]), "BAD_USER_INPUT", "options"),
        (field(type="SELECT", options=["o" * 101]), "BAD_USER_INPUT", "options"),
        (field(type="SELECT", options=[str(n) for n in range(101)]), "BAD_USER_INPUT", "options"),
        (field(type="TEXT", options=["a"]), "BAD_USER_INPUT", "options"),
        (field(type="COLOUR"), "BAD_USER_INPUT", None),
        # The project has a task, which would lack the new required field.
        (field(required=True), "BAD_USER_INPUT", "required"),
        (field(key="taken"), "CONFLICT", "key"),
        (field(projectId=gid("Label", 1)), "BAD_USER_INPUT", "projectId"),
    ]
    for variables, code, expected_field in cases:
        await rejected(gql, DEFINE_FIELD, variables, t.admin.token, code, expected_field)
    await rejected(gql, DEFINE_FIELD, field(), t.editor.token, "FORBIDDEN")
    await rejected(gql, DEFINE_FIELD, field(), t.viewer.token, "FORBIDDEN")
    # 100 options of 100 characters is the limit, not over it.
    await gql.ok(
        DEFINE_FIELD,
        field(type="MULTI_SELECT", options=[f"{n:0100d}" for n in range(100)]),
        token=t.admin.token,
    )


async def test_required_field_in_an_empty_project_is_enforced_on_tasks(gql, factory):
    t = await team(factory)
    await gql.ok(
        DEFINE_FIELD,
        {
            "i": {
                "projectId": t.project_gid,
                "key": "team",
                "name": "Team",
                "type": "TEXT",
                "required": True,
            }
        },
        token=t.admin.token,
    )
    create = """mutation($i: CreateTaskInput!) {
        createTask(input: $i) { task { id customProperties } }
    }"""
    await rejected(
        gql,
        create,
        {"i": {"projectId": t.project_gid, "title": "t"}},
        t.editor.token,
        "BAD_USER_INPUT",
        "customProperties.team",
    )
    task = (
        await gql.ok(
            create,
            {"i": {"projectId": t.project_gid, "title": "t", "customProperties": {"team": "core"}}},
            token=t.editor.token,
        )
    )["createTask"]["task"]
    # A required property cannot be removed.
    await rejected(
        gql,
        UPDATE,
        {"i": {"id": task["id"], "customProperties": {"team": None}}},
        t.editor.token,
        "BAD_USER_INPUT",
        "customProperties.team",
    )


# -- custom property values --------------------------------------------------------------------

_TYPES = {
    "txt": (CustomFieldType.TEXT, []),
    "num": (CustomFieldType.NUMBER, []),
    "day": (CustomFieldType.DATE, []),
    "link": (CustomFieldType.URL, []),
    "done": (CustomFieldType.CHECKBOX, []),
    "one": (CustomFieldType.SELECT, ["A", "B"]),
    "many": (CustomFieldType.MULTI_SELECT, ["A", "B", "C"]),
    "owner": (CustomFieldType.USER, []),
}


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [
        ("txt", "hello", 5),
        ("txt", "x" * 2000, "x" * 2001),
        ("num", 2.5, "2.5"),
        ("num", -3, True),
        ("day", "2030-02-28", "2030-02-30"),
        ("link", "https://example.test/a", "ftp://example.test"),
        ("link", "http://example.test", "not a url"),
        ("done", False, "yes"),
        ("one", "B", "Z"),
        ("one", "A", ["A"]),
        ("many", ["A", "C"], ["A", "Z"]),
        ("many", [], "A"),
        ("owner", "EDITOR", "STRANGER"),
        ("owner", "EDITOR", "PROJECT"),
    ],
)
async def test_custom_property_values(gql, factory, key, good, bad):
    t = await team(factory)
    stranger = await factory.user("Stranger")
    names = {"EDITOR": t.editor.gid, "STRANGER": stranger.gid, "PROJECT": t.project_gid}
    good, bad = (names.get(v, v) if isinstance(v, str) else v for v in (good, bad))
    for k, (kind, options) in _TYPES.items():
        await CustomFieldDefinition.create(
            project=t.project, key=k, name=k, type=kind, options=options
        )
    task = await make_task(t.project, t.owner)

    await rejected(
        gql,
        UPDATE,
        {"i": {"id": tid(task), "customProperties": {key: bad}}},
        t.editor.token,
        "BAD_USER_INPUT",
    )
    out = await gql.ok(
        UPDATE, {"i": {"id": tid(task), "customProperties": {key: good}}}, token=t.editor.token
    )
    assert out["updateTask"]["task"]["customProperties"] == {key: good}
    assert (await Task.get(id=task.id)).custom_properties == {key: good}
