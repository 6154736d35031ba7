"""resolvers/codec.py: the one base64 codec of IDs and cursors. The messages a client sees for
malformed IDs and cursors are pinned in tests/test_bad_input.py."""

from __future__ import annotations

import pytest

from resolvers import codec
from resolvers.event.log import BOARD
from resolvers.ids import parse_global_id, to_global_id


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"\xff\xfe?>", b"Task:12"])
def test_round_trip_without_padding(raw):
    text = codec.encode(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert codec.decode(text) == raw


def test_text_in_and_out():
    assert codec.encode("Task:1") == "VGFzazox"
    assert codec.decode_text("VGFzazox") == "Task:1"


@pytest.mark.parametrize("text", ["a", "abcde", "é", "=====a"])
def test_not_base64_is_a_value_error(text):
    with pytest.raises(ValueError):
        codec.decode(text)


def test_characters_outside_the_alphabet_are_skipped_as_base64_does():
    # Kept from the three copies this replaced: the caller's parse of the result refuses
    # what does not name a row or a position ("%%%" is empty, a Malformed ID).
    assert codec.decode("%%%") == b""
    assert codec.decode_text("VGFz%azox") == "Task:1"


def test_not_utf8_is_a_value_error():
    with pytest.raises(ValueError):
        codec.decode_text(codec.encode(b"\xff\xfe"))


def test_ids_and_event_cursors_share_it():
    assert to_global_id("Task", 7) == codec.encode("Task:7")
    assert parse_global_id(codec.encode("Task:7")) == ("Task", 7)
    cursor = BOARD.encode_cursor(3, 41)
    assert codec.decode_text(cursor) == f"{BOARD.kind}:3:41"
    assert BOARD.decode_cursor(cursor, 3) == 41
