"""updateTask, archiveTask/unarchiveTask, deleteTask, and the task reads (task(id), the relation
fields, project.tasks filters, ordering and keyset pagination)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models import (
    Comment,
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    OrgRole,
    Project,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
)
from tests.conftest import gid
from tests.tasks_support import (
    ARCHIVE,
    DELETE,
    UNARCHIVE,
    UPDATE,
    assert_dense,
    audits,
    events,
    make_task,
    rejected,
    state,
    team,
    tid,
)


async def _label(project, name, color="#112233") -> Label:
    return await Label.create(project=project, name=name, color=color)


async def _fields(project) -> None:
    await CustomFieldDefinition.create(
        project=project, key="points", name="Points", type=CustomFieldType.NUMBER
    )
    await CustomFieldDefinition.create(
        project=project, key="notes", name="Notes", type=CustomFieldType.TEXT
    )
    await CustomFieldDefinition.create(
        project=project,
        key="size",
        name="Size",
        type=CustomFieldType.SELECT,
        options=["S", "M", "L"],
    )


# -- updateTask --------------------------------------------------------------------------------


async def test_update_task_changes_every_field_with_audit_and_event(gql, factory):
    t = await team(factory)
    await _fields(t.project)
    a, b, c = [await _label(t.project, n) for n in "abc"]
    parent = await make_task(t.project, t.owner, "Parent")
    task = await make_task(
        t.project, t.owner, "Old", labels=[a], custom_properties={"notes": "keep me"}
    )

    data = await gql.ok(
        UPDATE,
        {
            "i": {
                "id": tid(task),
                "expectedVersion": 1,
                "title": "  New title  ",
                "description": "Details",
                "priority": "HIGH",
                "assigneeId": t.editor.gid,
                "dueDate": "2030-01-02",
                "parentId": tid(parent),
                "labelIds": [gid("Label", b.id), gid("Label", c.id), gid("Label", b.id)],
                "customProperties": {"points": 3, "size": "M"},
            }
        },
        token=t.editor.token,
    )
    out = data["updateTask"]["task"]
    assert out["title"] == "New title"
    assert out["description"] == "Details"
    assert out["priority"] == "HIGH"
    assert out["assignee"] == {"id": t.editor.gid}
    assert out["dueDate"] == "2030-01-02"
    assert out["parent"] == {"id": tid(parent)}
    assert sorted(label["name"] for label in out["labels"]) == ["b", "c"]
    assert out["customProperties"] == {"notes": "keep me", "points": 3, "size": "M"}
    assert out["version"] == 2

    row = await Task.get(id=task.id)
    assert (row.title, row.priority, row.priority_rank, row.version) == (
        "New title",
        TaskPriority.HIGH,
        1,
        2,
    )
    assert row.assignee_id == t.editor.user.id and row.parent_id == parent.id
    assert row.due_date == date(2030, 1, 2)
    assert row.status == TaskStatus.TODO and row.position == task.position
    assert set(await TaskLabel.filter(task_id=task.id).values_list("label_id", flat=True)) == {
        b.id,
        c.id,
    }

    [entry] = await audits("task.update")
    assert entry.actor_id == t.editor.user.id and entry.resource_id == str(task.id)
    assert entry.organization_id == t.org.id
    assert entry.before["title"] == "Old" and entry.before["version"] == 1
    assert entry.before["labelIds"] == [a.id]
    assert entry.after["title"] == "New title" and entry.after["version"] == 2
    assert entry.after["labelIds"] == sorted([b.id, c.id])
    assert entry.after["customProperties"] == {"notes": "keep me", "points": 3, "size": "M"}

    evts = await events(t.project)
    assert_dense(evts)
    assert [e.type for e in evts] == ["TaskUpdated"]
    payload = evts[0].payload
    assert payload["taskId"] == task.id
    assert set(payload["changed"]) == {
        "title",
        "description",
        "priority",
        "assigneeId",
        "dueDate",
        "parentId",
        "labelIds",
        "customProperties",
    }
    assert payload["task"] == entry.after
    assert evts[0].actor_id == t.editor.user.id


async def test_update_task_null_clears_and_omitted_fields_stay(gql, factory):
    t = await team(factory)
    await _fields(t.project)
    label = await _label(t.project, "x")
    parent = await make_task(t.project, t.owner, "Parent")
    task = await make_task(
        t.project,
        t.owner,
        "Keep",
        description="desc",
        assignee=t.editor.user,
        parent=parent,
        due_date=date(2030, 1, 1),
        labels=[label],
        custom_properties={"points": 1, "size": "S"},
    )
    out = (
        await gql.ok(
            UPDATE,
            {
                "i": {
                    "id": tid(task),
                    "assigneeId": None,
                    "dueDate": None,
                    "parentId": None,
                    "customProperties": {"points": None},
                }
            },
            token=t.editor.token,
        )
    )["updateTask"]["task"]
    assert out["assignee"] is None and out["dueDate"] is None and out["parent"] is None
    assert out["customProperties"] == {"size": "S"}
    # Not sent, so not touched.
    assert out["title"] == "Keep" and out["description"] == "desc"
    assert [label["name"] for label in out["labels"]] == ["x"]

    row = await Task.get(id=task.id)
    assert row.assignee_id is None and row.parent_id is None and row.due_date is None
    assert row.version == 2
    [evt] = await events(t.project)
    assert sorted(evt.payload["changed"]) == [
        "assigneeId",
        "customProperties",
        "dueDate",
        "parentId",
    ]

    # description null clears it; labelIds [] removes every label.
    out = (
        await gql.ok(
            UPDATE,
            {"i": {"id": tid(task), "description": None, "labelIds": []}},
            token=t.editor.token,
        )
    )["updateTask"]["task"]
    assert out["description"] == "" and out["labels"] == []
    assert await TaskLabel.filter(task_id=task.id).count() == 0


async def test_update_without_expected_version_still_bumps_version(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    for n in (2, 3):
        out = await gql.ok(UPDATE, {"i": {"id": tid(task), "title": f"v{n}"}}, token=t.editor.token)
        assert out["updateTask"]["task"]["version"] == n
    assert (await Task.get(id=task.id)).version == 3
    assert_dense(await events(t.project))


async def test_update_that_changes_nothing_writes_nothing(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner, "Same", priority=TaskPriority.LOW)
    before = await state()
    out = (
        await gql.ok(
            UPDATE,
            {"i": {"id": tid(task), "title": "Same", "priority": "LOW", "expectedVersion": 1}},
            token=t.editor.token,
        )
    )["updateTask"]["task"]
    assert out["version"] == 1
    assert await state() == before


async def test_status_change_through_update_goes_to_bottom_of_new_column(gql, factory):
    t = await team(factory)
    doing = [
        await make_task(t.project, t.owner, f"d{i}", status=TaskStatus.INPROGRESS) for i in range(2)
    ]
    task = await make_task(t.project, t.owner, "mover")
    out = await gql.ok(
        UPDATE, {"i": {"id": tid(task), "status": "INPROGRESS"}}, token=t.editor.token
    )
    moved = out["updateTask"]["task"]
    assert moved["status"] == "INPROGRESS"
    assert moved["position"] > max(d.position for d in doing)
    for d in doing:
        row = await Task.get(id=d.id)
        assert (row.position, row.version) == (d.position, 1)
    [evt] = await events(t.project)
    assert evt.payload["changed"] == ["status"]


async def test_stale_expected_version_is_a_conflict_and_writes_nothing(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    await Task.filter(id=task.id).update(version=4)
    error = await rejected(
        gql,
        UPDATE,
        {"i": {"id": tid(task), "title": "x", "expectedVersion": 3}},
        t.editor.token,
        "CONFLICT",
    )
    assert error["extensions"]["currentVersion"] == 4


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"title": "x" * 501}, "title"),
        ({"title": "   "}, "title"),
        ({"title": None}, "title"),
        ({"status": None}, "status"),
        ({"priority": None}, "priority"),
        ({"description": "x" * 50_001}, "description"),
        ({"customProperties": {"points": "three"}}, "customProperties.points"),
        ({"customProperties": {"nope": 1}}, "customProperties.nope"),
        ({"customProperties": {"size": "XL"}}, "customProperties.size"),
        ({"customProperties": None}, "customProperties"),
        ({"customProperties": [1, 2]}, "customProperties"),
        ({"assigneeId": "not-an-id"}, None),
        ({"assigneeId": gid("Task", 1)}, "assigneeId"),
        ({"parentId": gid("Project", 1)}, "parentId"),
        ({"labelIds": [gid("User", 1)]}, "labelIds"),
    ],
)
async def test_update_rejects_bad_input_without_writing(gql, factory, patch, field):
    t = await team(factory)
    await _fields(t.project)
    task = await make_task(t.project, t.owner, custom_properties={"size": "S"})
    await rejected(
        gql, UPDATE, {"i": {"id": tid(task), **patch}}, t.editor.token, "BAD_USER_INPUT", field
    )


async def test_update_rejects_references_outside_the_project(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    other_project = await factory.project(t.org, t.owner, "Other")
    foreign_task = await make_task(other_project, t.owner)
    foreign_label = await _label(other_project, "elsewhere")
    stranger = await factory.user("Stranger")  # not in the organization

    cases = [
        ({"assigneeId": stranger.gid}, "assigneeId"),
        ({"parentId": tid(foreign_task)}, "parentId"),
        ({"parentId": gid("Task", 999_999)}, "parentId"),
        ({"labelIds": [gid("Label", foreign_label.id)]}, "labelIds"),
        ({"labelIds": [gid("Label", 999_999)]}, "labelIds"),
    ]
    for patch, field in cases:
        await rejected(
            gql, UPDATE, {"i": {"id": tid(task), **patch}}, t.editor.token, "BAD_USER_INPUT", field
        )


async def test_update_rejects_parent_cycles(gql, factory):
    t = await team(factory)
    root = await make_task(t.project, t.owner, "root")
    child = await make_task(t.project, t.owner, "child", parent=root)
    grandchild = await make_task(t.project, t.owner, "grandchild", parent=child)
    for parent in (root, child, grandchild):
        await rejected(
            gql,
            UPDATE,
            {"i": {"id": tid(root), "parentId": tid(parent)}},
            t.editor.token,
            "BAD_USER_INPUT",
            "parentId",
        )
    # Re-parenting within the tree without a loop is fine.
    out = await gql.ok(
        UPDATE, {"i": {"id": tid(grandchild), "parentId": tid(root)}}, token=t.editor.token
    )
    assert out["updateTask"]["task"]["parent"] == {"id": tid(root)}


async def test_bad_enum_value_in_variables_is_bad_user_input(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    error = await rejected(
        gql,
        UPDATE,
        {"i": {"id": tid(task), "priority": "URGENT"}},
        t.editor.token,
        "BAD_USER_INPUT",
    )
    assert "URGENT" in error["message"]


async def test_malformed_and_wrong_type_ids(gql, factory):
    t = await team(factory)
    await make_task(t.project, t.owner)
    for bad in ("!!!", "", gid("Project", t.project.id), "VGFzazp4"):  # "Task:x"
        error = await rejected(
            gql, UPDATE, {"i": {"id": bad, "title": "x"}}, t.editor.token, "BAD_USER_INPUT"
        )
        assert "ID" in error["message"]
    err = await gql.error(
        "query($id: ID!) { task(id: $id) { id } }", {"id": t.project_gid}, token=t.editor.token
    )
    assert err["extensions"]["code"] == "BAD_USER_INPUT"


async def test_update_roles_and_visibility(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    variables = {"i": {"id": tid(task), "title": "changed"}}
    await rejected(gql, UPDATE, variables, t.viewer.token, "FORBIDDEN")

    outsider = await factory.user("Outsider")
    await factory.org(outsider)
    await rejected(gql, UPDATE, variables, outsider.token, "NOT_FOUND")
    # A task that does not exist looks exactly the same.
    missing = await gql.error(
        UPDATE, {"i": {"id": gid("Task", 999_999), "title": "x"}}, token=outsider.token
    )
    invisible = await gql.error(UPDATE, variables, token=outsider.token)
    assert missing["message"] == invisible["message"]

    # An org member without a project membership cannot see the project.
    member = await factory.user("Member")
    await factory.org_member(t.org, member, OrgRole.MEMBER)
    await rejected(gql, UPDATE, variables, member.token, "NOT_FOUND")
    # An org admin can, through the implied project role.
    org_admin = await factory.user("OrgAdmin")
    await factory.org_member(t.org, org_admin, OrgRole.ADMIN)
    await gql.ok(UPDATE, variables, token=org_admin.token)


async def test_archived_project_is_read_only(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    await Project.filter(id=t.project.id).update(archived_at=datetime.now(UTC))
    await rejected(
        gql, UPDATE, {"i": {"id": tid(task), "title": "x"}}, t.owner.token, "BAD_USER_INPUT"
    )
    await rejected(gql, DELETE, {"i": {"id": tid(task)}}, t.owner.token, "BAD_USER_INPUT")


# -- archive / unarchive -----------------------------------------------------------------------

COLUMN = """query($p: ID!, $f: TaskFilter) {
    project(id: $p) {
        board { columns { status tasks { nodes { id } } } }
        tasks(filter: $f) { totalCount nodes { id archivedAt } }
    }
}"""


async def test_archive_and_unarchive(gql, factory):
    t = await team(factory)
    keep = await make_task(t.project, t.owner, "keep")
    task = await make_task(t.project, t.owner, "archive me")

    out = await gql.ok(
        ARCHIVE, {"i": {"id": tid(task), "expectedVersion": 1}}, token=t.editor.token
    )
    archived = out["archiveTask"]["task"]
    assert archived["archivedAt"] is not None and archived["version"] == 2
    row = await Task.get(id=task.id)
    assert row.archived_at is not None and row.position == task.position

    board = (await gql.ok(COLUMN, {"p": t.project_gid}, token=t.viewer.token))["project"]
    assert board["board"]["columns"][0]["tasks"]["nodes"] == [{"id": tid(keep)}]
    assert board["tasks"]["totalCount"] == 1
    board = await gql.ok(
        COLUMN, {"p": t.project_gid, "f": {"includeArchived": True}}, token=t.viewer.token
    )
    assert board["project"]["tasks"]["totalCount"] == 2

    # Archived tasks are frozen until unarchived.
    await rejected(
        gql, UPDATE, {"i": {"id": tid(task), "title": "x"}}, t.editor.token, "BAD_USER_INPUT", "id"
    )

    # Archiving again changes nothing.
    before = await state()
    again = (await gql.ok(ARCHIVE, {"i": {"id": tid(task)}}, token=t.editor.token))["archiveTask"][
        "task"
    ]
    assert again["version"] == 2
    assert await state() == before

    out = (await gql.ok(UNARCHIVE, {"i": {"id": tid(task)}}, token=t.editor.token))[
        "unarchiveTask"
    ]["task"]
    assert out["archivedAt"] is None and out["version"] == 3 and out["position"] == task.position
    board = (await gql.ok(COLUMN, {"p": t.project_gid}, token=t.viewer.token))["project"]
    assert board["board"]["columns"][0]["tasks"]["nodes"] == [{"id": tid(keep)}, {"id": tid(task)}]

    evts = await events(t.project)
    assert_dense(evts)
    assert [e.type for e in evts] == ["TaskArchived", "TaskUnarchived"]
    assert evts[0].payload["task"]["archivedAt"] is not None
    [arch] = await audits("task.archive")
    assert arch.before["archivedAt"] is None and arch.after["archivedAt"] is not None
    [unarch] = await audits("task.unarchive")
    assert unarch.after["archivedAt"] is None


async def test_archive_needs_write_rights(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    await rejected(gql, ARCHIVE, {"i": {"id": tid(task)}}, t.viewer.token, "FORBIDDEN")


# -- deleteTask --------------------------------------------------------------------------------


async def test_delete_task_cascades_and_detaches_subtasks(gql, factory):
    t = await team(factory)
    label = await _label(t.project, "bug")
    task = await make_task(t.project, t.owner, "doomed", labels=[label])
    sub = await make_task(t.project, t.owner, "sub", parent=task)
    other = await make_task(t.project, t.owner, "other", labels=[label])
    await Comment.create(task=task, author=t.owner.user, body="hi")
    await Comment.create(task=other, author=t.owner.user, body="stays")

    data = await gql.ok(DELETE, {"i": {"id": tid(task)}}, token=t.admin.token)
    assert data["deleteTask"]["deletedTaskId"] == tid(task)

    assert not await Task.exists(id=task.id)
    assert await Comment.filter(task_id=task.id).count() == 0
    assert await TaskLabel.filter(task_id=task.id).count() == 0
    assert await Comment.filter(task_id=other.id).count() == 1
    assert await TaskLabel.filter(task_id=other.id).count() == 1
    assert await Label.exists(id=label.id)
    sub_row = await Task.get(id=sub.id)
    assert sub_row.parent_id is None and sub_row.version == 2

    [entry] = await audits("task.delete")
    assert entry.before["title"] == "doomed" and entry.before["labelIds"] == [label.id]
    assert entry.after is None and entry.actor_id == t.admin.user.id
    [evt] = await events(t.project)
    assert evt.type == "TaskDeleted"
    assert evt.payload == {"taskId": task.id, "status": "todo", "detachedSubtaskIds": [sub.id]}

    gone = await gql.ok(
        "query($id: ID!) { task(id: $id) { id } }", {"id": tid(task)}, token=t.admin.token
    )
    assert gone["task"] is None
    await rejected(gql, DELETE, {"i": {"id": tid(task)}}, t.admin.token, "NOT_FOUND")


async def test_delete_task_roles(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    await rejected(gql, DELETE, {"i": {"id": tid(task)}}, t.viewer.token, "FORBIDDEN")
    error = await rejected(gql, DELETE, {"i": {"id": tid(task)}}, t.editor.token, "FORBIDDEN")
    assert error["extensions"]["requiredRole"] == "admin"
    await gql.ok(DELETE, {"i": {"id": tid(task)}}, token=t.owner.token)
    assert not await Task.exists(id=task.id)


# -- reads: task(id) and its relations -----------------------------------------------------------

TASK_READ = """query($id: ID!) {
    task(id: $id) {
        id title customProperties
        assignee { id name }
        createdBy { id }
        parent { id title }
        project { id }
        labels { id name color }
        subtaskCount commentCount
        subtasks(first: 10) { totalCount nodes { id title } }
        comments(first: 2) {
            totalCount
            pageInfo { hasNextPage endCursor }
            nodes { id body author { id } task { id } }
        }
    }
}"""


async def test_task_read_resolves_every_relation(gql, factory):
    t = await team(factory)
    await _fields(t.project)
    label = await _label(t.project, "ui", "#abcdef")
    parent = await make_task(t.project, t.owner, "Parent")
    task = await make_task(
        t.project,
        t.owner,
        "Child",
        parent=parent,
        assignee=t.editor.user,
        labels=[label],
        custom_properties={"points": 5},
    )
    subs = [await make_task(t.project, t.owner, f"s{i}", parent=task) for i in range(2)]
    await make_task(
        t.project, t.owner, "archived sub", parent=task, archived_at=datetime.now(UTC)
    )
    comments = [
        await Comment.create(task=task, author=t.viewer.user, body=f"c{i}") for i in range(3)
    ]

    out = (await gql.ok(TASK_READ, {"id": tid(task)}, token=t.viewer.token))["task"]
    assert out["customProperties"] == {"points": 5}
    assert out["assignee"] == {"id": t.editor.gid, "name": t.editor.user.name}
    assert out["createdBy"] == {"id": t.owner.gid}
    assert out["parent"] == {"id": tid(parent), "title": "Parent"}
    assert out["project"] == {"id": t.project_gid}
    assert out["labels"] == [{"id": gid("Label", label.id), "name": "ui", "color": "#abcdef"}]
    assert out["subtaskCount"] == 2 and out["commentCount"] == 3
    assert out["subtasks"]["totalCount"] == 2
    assert [n["id"] for n in out["subtasks"]["nodes"]] == [tid(s) for s in subs]
    page = out["comments"]
    assert page["totalCount"] == 3 and page["pageInfo"]["hasNextPage"] is True
    assert [n["body"] for n in page["nodes"]] == ["c0", "c1"]
    assert page["nodes"][0]["author"] == {"id": t.viewer.gid}
    assert page["nodes"][0]["task"] == {"id": tid(task)}
    assert page["nodes"][0]["id"] == gid("Comment", comments[0].id)

    rest = await gql.ok(
        """query($id: ID!, $after: String) { task(id: $id) { comments(first: 2, after: $after) {
            pageInfo { hasNextPage } nodes { body } } } }""",
        {"id": tid(task), "after": page["pageInfo"]["endCursor"]},
        token=t.viewer.token,
    )
    assert rest["task"]["comments"]["nodes"] == [{"body": "c2"}]
    assert rest["task"]["comments"]["pageInfo"]["hasNextPage"] is False


async def test_task_in_another_org_reads_as_null(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    outsider = await factory.user("Outsider")
    out = await gql.ok(
        "query($id: ID!) { task(id: $id) { id } }", {"id": tid(task)}, token=outsider.token
    )
    assert out["task"] is None


# -- reads: project.tasks filters ------------------------------------------------------------------

TASKS = """query($p: ID!, $f: TaskFilter, $o: TaskOrder, $first: Int, $after: String) {
    project(id: $p) {
        tasks(filter: $f, orderBy: $o, first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage hasPreviousPage endCursor }
            nodes { id title }
        }
    }
}"""


async def _titles(gql, t, flt) -> list[str]:
    data = await gql.ok(
        TASKS, {"p": t.project_gid, "f": flt, "o": {"field": "TITLE"}}, token=t.viewer.token
    )
    return [n["title"] for n in data["project"]["tasks"]["nodes"]]


@pytest.mark.both_databases
async def test_project_tasks_filters(gql, factory):
    t = await team(factory)
    bug = await _label(t.project, "bug")
    ui = await _label(t.project, "ui")
    await make_task(
        t.project,
        t.owner,
        "alpha",
        status=TaskStatus.TODO,
        priority=TaskPriority.HIGH,
        assignee=t.editor.user,
        labels=[bug],
        due_date=date(2030, 1, 10),
    )
    await make_task(
        t.project,
        t.owner,
        "bravo 100%",
        status=TaskStatus.DONE,
        priority=TaskPriority.LOW,
        assignee=t.admin.user,
        labels=[ui],
        due_date=date(2030, 1, 20),
    )
    await make_task(
        t.project,
        t.owner,
        "charlie",
        status=TaskStatus.INPROGRESS,
        priority=TaskPriority.CRITICAL,
        labels=[bug, ui],
    )
    await make_task(
        t.project, t.owner, "delta_x", status=TaskStatus.DONE, due_date=date(2030, 1, 30)
    )
    await make_task(
        t.project,
        t.owner,
        "echo archived",
        assignee=t.editor.user,
        archived_at=datetime.now(UTC),
    )
    other = await factory.project(t.org, t.owner, "Other")
    await make_task(other, t.owner, "foreign alpha")

    assert await _titles(gql, t, None) == ["alpha", "bravo 100%", "charlie", "delta_x"]
    assert await _titles(gql, t, {"status": ["DONE"]}) == ["bravo 100%", "delta_x"]
    assert await _titles(gql, t, {"status": ["TODO", "INPROGRESS"]}) == ["alpha", "charlie"]
    assert await _titles(gql, t, {"priority": ["CRITICAL", "HIGH"]}) == ["alpha", "charlie"]
    assert await _titles(gql, t, {"assignee": [t.editor.gid]}) == ["alpha"]
    assert await _titles(gql, t, {"assignee": [t.editor.gid, t.admin.gid]}) == [
        "alpha",
        "bravo 100%",
    ]
    assert await _titles(gql, t, {"unassigned": True}) == ["charlie", "delta_x"]
    assert await _titles(gql, t, {"unassigned": True, "assignee": [t.admin.gid]}) == [
        "bravo 100%",
        "charlie",
        "delta_x",
    ]
    assert await _titles(gql, t, {"label": [gid("Label", bug.id)]}) == ["alpha", "charlie"]
    assert await _titles(gql, t, {"label": [gid("Label", bug.id), gid("Label", ui.id)]}) == [
        "alpha",
        "bravo 100%",
        "charlie",
    ]
    assert await _titles(gql, t, {"search": "ALPHA"}) == ["alpha"]
    # LIKE wildcards in the search are literal characters.
    assert await _titles(gql, t, {"search": "100%"}) == ["bravo 100%"]
    assert await _titles(gql, t, {"search": "a_x"}) == ["delta_x"]
    assert await _titles(gql, t, {"search": "%"}) == ["bravo 100%"]
    # Due dates: strictly before / after; tasks without a due date match neither.
    assert await _titles(gql, t, {"dueBefore": "2030-01-20"}) == ["alpha"]
    assert await _titles(gql, t, {"dueAfter": "2030-01-10"}) == ["bravo 100%", "delta_x"]
    assert await _titles(gql, t, {"dueAfter": "2030-01-05", "dueBefore": "2030-01-25"}) == [
        "alpha",
        "bravo 100%",
    ]
    assert await _titles(gql, t, {"includeArchived": True}) == [
        "alpha",
        "bravo 100%",
        "charlie",
        "delta_x",
        "echo archived",
    ]
    assert await _titles(gql, t, {"includeArchived": True, "assignee": [t.editor.gid]}) == [
        "alpha",
        "echo archived",
    ]
    # Conditions combine with AND.
    assert await _titles(gql, t, {"status": ["DONE"], "unassigned": True}) == ["delta_x"]

    error = await gql.error(
        TASKS, {"p": t.project_gid, "f": {"assignee": [t.project_gid]}}, token=t.viewer.token
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    error = await gql.error(
        TASKS, {"p": t.project_gid, "f": {"status": ["DOING"]}}, token=t.viewer.token
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


# -- reads: ordering and keyset pagination -------------------------------------------------------

_KEYS = {
    "POSITION": "position",
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "PRIORITY": "priority_rank",
    "TITLE": "title",
}


async def _page_through(gql, t, order) -> tuple[list[str], int]:
    ids, after, pages = [], None, 0
    while True:
        data = await gql.ok(
            TASKS,
            {"p": t.project_gid, "o": order, "first": 2, "after": after},
            token=t.viewer.token,
        )
        conn = data["project"]["tasks"]
        pages += 1
        assert conn["totalCount"] == 5
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        ids += [n["id"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return ids, pages
        after = conn["pageInfo"]["endCursor"]


@pytest.mark.both_databases
@pytest.mark.parametrize("field", list(_KEYS))
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_ordering_and_pagination(gql, factory, field, direction):
    t = await team(factory)
    # Ties on every key (same title, same priority, same updated_at, same position in two
    # columns) so the id tie-break is exercised across page boundaries.
    tasks = [
        await make_task(t.project, t.owner, "same", priority=TaskPriority.LOW),
        await make_task(t.project, t.owner, "Zulu", priority=TaskPriority.CRITICAL),
        await make_task(
            t.project, t.owner, "same", priority=TaskPriority.LOW, status=TaskStatus.DONE
        ),
        await make_task(t.project, t.owner, "alpha", priority=TaskPriority.HIGH),
        await make_task(
            t.project, t.owner, "mike", priority=TaskPriority.LOW, status=TaskStatus.DONE
        ),
    ]
    stamp = datetime(2030, 5, 5, 12, 0, tzinfo=UTC)
    for i, task in enumerate(tasks):
        await Task.filter(id=task.id).update(updated_at=stamp + timedelta(seconds=i % 2))

    rows = await Task.filter(project_id=t.project.id).order_by("id")
    key = _KEYS[field]
    expected = [tid(r) for r in sorted(rows, key=lambda r: (getattr(r, key), r.id))]
    if direction == "DESC":
        expected.reverse()

    ids, pages = await _page_through(gql, t, {"field": field, "direction": direction})
    assert ids == expected
    assert pages == 3


async def test_backward_pagination_and_bad_cursor(gql, factory):
    t = await team(factory)
    tasks = [await make_task(t.project, t.owner, f"t{i}") for i in range(5)]
    query = """query($p: ID!, $before: String) { project(id: $p) {
        tasks(last: 2, before: $before) {
            pageInfo { hasPreviousPage startCursor } nodes { id }
        }
    } }"""
    data = await gql.ok(query, {"p": t.project_gid}, token=t.viewer.token)
    conn = data["project"]["tasks"]
    assert [n["id"] for n in conn["nodes"]] == [tid(x) for x in tasks[3:]]
    assert conn["pageInfo"]["hasPreviousPage"] is True
    data = await gql.ok(
        query, {"p": t.project_gid, "before": conn["pageInfo"]["startCursor"]}, token=t.viewer.token
    )
    assert [n["id"] for n in data["project"]["tasks"]["nodes"]] == [tid(x) for x in tasks[1:3]]

    error = await gql.error(TASKS, {"p": t.project_gid, "after": "garbage!"}, token=t.viewer.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    error = await gql.error(TASKS, {"p": t.project_gid, "first": 101}, token=t.viewer.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
