"""follow()'s two reads of the log (current seq, oldest kept event) with the first event
committed between them: a valid cursor on a fresh, empty log must not answer ResyncRequired.

The interleaving is forced, not hoped for: whichever of the two reads the subscription makes
first commits a real createTask (over HTTP, through the whole write pipeline) right after it
has read, before the second read runs.
"""

from __future__ import annotations

import contextlib

import pytest

from resolvers.event.log import BOARD
from tests.conftest import gid
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, GraphQLWS

BOARD_EVENTS = """subscription($p: ID!, $after: String) {
  boardEvents(projectId: $p, after: $after) {
    __typename seq ... on TaskCreated { task { title } }
  }
}"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
CURSOR = "query($p: ID!) { project(id: $p) { eventCursor } }"


@contextlib.contextmanager
def write_between_reads(project_id: int, write):
    """Wrap the board log's two reads: the first one of them for this project runs `write`
    after reading. EventLog is a frozen dataclass, so the wrappers go on the instance with
    object.__setattr__ and are removed afterwards."""
    armed = True
    reads: list[str] = []

    def wrap(name: str):
        original = getattr(BOARD, name)

        async def read(key: int):
            nonlocal armed
            value = await original(key)
            if key == project_id:
                reads.append(name)
                if armed:
                    armed = False
                    await write()
            return value

        return read

    for name in ("current_seq", "oldest_kept"):
        object.__setattr__(BOARD, name, wrap(name))
    try:
        yield reads
    finally:
        for name in ("current_seq", "oldest_kept"):
            object.__delattr__(BOARD, name)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_first_event_committed_between_the_reads_is_delivered(live, gql, factory, protocol):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Fresh")
    pid = gid("Project", project.id)
    cursor = (await gql.ok(CURSOR, {"p": pid}, token=owner.token))["project"]["eventCursor"]

    async def write() -> None:
        await gql.ok(CREATE, {"i": {"projectId": pid, "title": "first"}}, token=owner.token)

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=owner.token)
    try:
        with write_between_reads(project.id, write) as reads:
            await ws.subscribe(BOARD_EVENTS, {"p": pid, "after": cursor})
            first = (await ws.next_data())["data"]["boardEvents"]
        assert sorted(reads) == ["current_seq", "oldest_kept"]  # the write ran between them
        assert first == {"__typename": "TaskCreated", "seq": 1, "task": {"title": "first"}}
    finally:
        await ws.close()
