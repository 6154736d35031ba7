"""A committed write is never reported as `data: null`: an error that can be known before
execution refuses the document before any resolver runs (tests/test_request_limits.py), and an
error raised while the payload's selection executes nulls only that field, next to the payload."""

from __future__ import annotations

from models import AuditEntry, BoardEvent, Task
from resolvers.ids import to_global_id


async def test_an_error_in_the_payload_selection_keeps_the_payload(gql, factory):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    body = await gql.raw(
        'mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id subtasks(after: "bm90IGEgY3Vyc29y") { totalCount } } } }',
        {"i": {"projectId": to_global_id("Project", project.id), "title": "written once"}},
        token=owner.token,
    )
    # The write committed: the payload is there, the failing field is null beside its error.
    assert body["data"] == {"createTask": {"task": None}}
    [error] = body["errors"]
    assert error["path"] == ["createTask", "task", "subtasks"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await Task.filter(title="written once").count() == 1
    assert await AuditEntry.filter(action="task.create").count() == 1
    assert await BoardEvent.filter(project_id=project.id).count() == 1


async def test_every_payload_object_field_is_nullable(gql):
    """So no error inside a payload can null the mutation field itself."""
    from graphql import GraphQLNonNull, is_leaf_type

    from schema.root import schema

    mutation = schema._schema.mutation_type
    for name, field in mutation.fields.items():
        payload = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        for fname, pfield in payload.fields.items():
            inner = pfield.type.of_type if isinstance(pfield.type, GraphQLNonNull) else pfield.type
            if not is_leaf_type(inner):
                assert not isinstance(pfield.type, GraphQLNonNull), f"{name} -> {payload.name}.{fname}"
