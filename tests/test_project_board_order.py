"""Board order is byte order of the rank strings, on every database."""

import pytest

from models import Task
from tests.conftest import gid


@pytest.mark.both_databases
async def test_positions_sort_bytewise(gql, factory):
    alice = await factory.user()
    org = await factory.org(alice)
    project = await factory.project(org, alice)
    # Byte order: "Zz" < "a0" < "a0V" < "a1"; a locale collation puts "Zz" last.
    for title, position in [("third", "a0V"), ("first", "Zz"), ("fourth", "a1"), ("second", "a0")]:
        await Task.create(project=project, title=title, position=position, created_by=alice.user)
    data = await gql.ok(
        "query($p: ID!) { project(id: $p) { board { columns { tasks { nodes { title } } } } } }",
        {"p": gid("Project", project.id)},
        token=alice.token,
    )
    titles = [t["title"] for t in data["project"]["board"]["columns"][0]["tasks"]["nodes"]]
    assert titles == ["first", "second", "third", "fourth"]


@pytest.mark.postgres_only
async def test_position_column_is_byte_ordered(app):
    """The local server's default collation may already be C; pin the column itself.
    (SQLite compares TEXT with BINARY collation by default.)"""
    from tortoise import Tortoise

    rows = await Tortoise.get_connection("default").execute_query_dict(
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_name = 'task' AND column_name = 'position'"
    )
    assert rows == [{"collation_name": "C"}]
