"""The committed schema.graphql is the schema the code serves."""

from server.cli import schema_sdl
from server.settings import PROJECT_ROOT


def test_committed_schema_matches_the_code():
    committed = PROJECT_ROOT / "schema.graphql"
    assert committed.exists(), "schema.graphql is missing: run `make schema` and commit it"
    assert committed.read_text() == schema_sdl(), (
        "schema.graphql is out of date with the code: run `make schema` and commit the result"
    )
