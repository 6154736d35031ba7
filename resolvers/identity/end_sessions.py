"""The one hook that ends every session of a user: called by a password reset (and, later,
by `logOutEverywhere`, `endMemberSessions`, deactivation).

Today an access token is a stateless JWT (resolvers/identity/auth.py) with no session behind
it, so there is nothing stored to end: a token issued before the reset keeps working until it
expires (PCG_ACCESS_TOKEN_TTL). The refresh-token sessions of issue 14 (a parallel branch)
revoke here, in the caller's transaction, and close the user's open websockets after commit.
API keys are not sessions: they belong to an organization and survive a password change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resolvers.unit_of_work import UnitOfWork

log = logging.getLogger("pcg.auth")


async def end_all_sessions(work: UnitOfWork, user_id: int, reason: str) -> int:
    """End every session of `user_id` inside `work`'s transaction; the number ended.

    Until sessions are stored there are none to end (0). Open streams are told to re-check
    their access after commit, so a revocation wired here takes effect on them at once."""
    work.access_changed_for(user_id)
    log.debug("ending the sessions of user %s (%s): none are stored yet", user_id, reason)
    return 0
