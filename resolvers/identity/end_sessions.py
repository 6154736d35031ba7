"""The one hook that ends every session of a user in the caller's transaction: a password
reset calls it (logOutEverywhere and endMemberSessions go through the same
`sessions.end_sessions`). After the commit the sessions' access tokens are refused and their
websockets closed on every instance (resolvers/identity/revocations.py), and their streams
without a socket are told to check again. API keys are not sessions: they belong to an
organization and survive a password change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import Session, SessionEndReason
from resolvers.identity.sessions import end_sessions

if TYPE_CHECKING:
    from resolvers.unit_of_work import UnitOfWork


async def end_all_sessions(work: UnitOfWork, user_id: int, reason: str) -> int:
    """End every session of `user_id` inside `work`'s transaction; the number ended.
    `reason` is a SessionEndReason value ("password_reset")."""
    ended = await end_sessions(work, Session.filter(user_id=user_id), SessionEndReason(reason))
    # The streams of the user are told even when no session was open (an API key's).
    work.access_changed_for(user_id)
    return len(ended)
