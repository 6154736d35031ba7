"""The per-request context that every resolver receives as `ctx`.

It lives below the schema layer (schema/ and resolvers/ import it, never server/): the server
builds one per HTTP request and one per websocket connection (server/graphql_app.py), the CLI
one per command. Settings and the NORA runtime are typed only (imported for type checking):
resolvers read them, they are built above.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models.audit import USER_AGENT_MAX
from resolvers.access import Access
from resolvers.loaders import Loaders

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from resolvers.broadcast import Hub
    from resolvers.documents import TrustedDocuments
    from resolvers.identity.revocations import SessionRegistry
    from resolvers.nora.engine import NoraRuntime
    from resolvers.response_cache import Store
    from server.settings import Settings


@dataclass
class Context:
    settings: Settings
    # Who calls and what they may see: the one access layer (resolvers/access.py).
    access: Access
    broadcast: Hub | None
    request: Request | WebSocket | None = None
    response: Response | None = None
    ip: str | None = None
    # The client's User-Agent (HTTP request, or the websocket's handshake), for audit entries.
    user_agent: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None
    # The HTTP Authorization header until schema/authentication.py resolves it into `access`.
    authorization: str | None = None
    # Why connection_init was refused (server/ws_protocol.py puts it in the close reason).
    ws_rejection: dict[str, Any] | None = None
    # The instance's allow-list of documents.
    documents: TrustedDocuments | None = None
    # The instance's NORA runtime: running replies, rate limiter, provider.
    nora: NoraRuntime | None = None
    # The instance's ended sessions and the websockets open on each session.
    session_registry: SessionRegistry | None = None
    # Whole query answers (schema/caching.py); None: nothing is cached.
    response_cache: Store | None = None


def user_agent_of(headers: Any) -> str | None:
    """The User-Agent header as an audit entry keeps it: printable characters only (a NUL
    cannot be stored on PostgreSQL), cut to the column; None when absent or empty."""
    raw = headers.get("user-agent")
    if not raw:
        return None
    text = "".join(ch for ch in raw if ch.isprintable())[:USER_AGENT_MAX].strip()
    return text or None
