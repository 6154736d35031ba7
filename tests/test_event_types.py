"""Every stored event type has the GraphQL type that shows it, and every GraphQL event type
is reachable from a stored one: renaming a class or adding a type cannot silently drop
events (they used to be matched by class __name__)."""

from __future__ import annotations

from graphql import build_schema

from models import BoardEventType, NoraEventType
from schema.event import EVENT_TYPES, BoardEvent, ResyncRequired
from schema.nora import NORA_EVENT_TYPES, NoraEvent, NoraResyncRequired
from schema.root import schema


def _implementations(interface: str) -> set[str]:
    built = build_schema(schema.as_str())
    return {t.name for t in built.get_possible_types(built.get_type(interface))}


def test_every_board_event_type_has_its_graphql_type_and_back():
    assert set(EVENT_TYPES) == set(BoardEventType)
    for member, cls in EVENT_TYPES.items():
        assert issubclass(cls, BoardEvent)
        assert cls.__strawberry_definition__.name == member.value
    shown = {cls.__strawberry_definition__.name for cls in EVENT_TYPES.values()}
    assert _implementations("BoardEvent") == shown | {ResyncRequired.__strawberry_definition__.name}


def test_every_nora_event_type_has_its_graphql_type_and_back():
    assert set(NORA_EVENT_TYPES) == set(NoraEventType)
    for member, cls in NORA_EVENT_TYPES.items():
        assert issubclass(cls, NoraEvent)
        assert cls.__strawberry_definition__.name == member.value
    shown = {cls.__strawberry_definition__.name for cls in NORA_EVENT_TYPES.values()}
    assert _implementations("NoraEvent") == shown | {NoraResyncRequired.__strawberry_definition__.name}
