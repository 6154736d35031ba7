"""The per-request context that resolvers receive as `ctx`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from resolvers.access import Viewer
from resolvers.loaders import Loaders
from server.settings import Settings


@dataclass
class Context:
    settings: Settings
    viewer: Viewer
    broadcast: Any
    request: Any = None
    response: Any = None
    ip: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict | None = None
    # The HTTP Authorization header until schema/authentication.py resolves it into `viewer`.
    authorization: str | None = None
    # Why connection_init was refused (server/ws_protocol.py puts it in the close reason).
    ws_rejection: dict | None = None
    # The instance's allow-list of documents (resolvers/documents.py TrustedDocuments).
    documents: Any = None
    # The instance's NORA runtime (resolvers/nora/engine.py NoraRuntime): running replies,
    # rate limiter, provider.
    nora: Any = None
