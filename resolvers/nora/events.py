"""A conversation's event log: the same gap-free pattern as the board, channel `nora:<id>`.

Events are appended by a unit of work (resolvers/unit_of_work.py) inside its transaction (the
conversation row's `event_seq` is bumped first, so on PostgreSQL its row lock orders writers)
and published only after it commits.
"""

from __future__ import annotations

from models import NoraConversation, NoraEvent
from resolvers.event.log import PayloadLog


def channel(conversation_id: int) -> str:
    return f"nora:{conversation_id}"


def cancel_channel(message_id: int) -> str:
    """Where cancelNoraMessage reaches the instance that generates the message."""
    return f"nora-cancel:{message_id}"


NORA_LOG = PayloadLog(kind="nora", model=NoraEvent, owner=NoraConversation, key="conversation_id", channel=channel)
