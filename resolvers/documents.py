"""Trusted documents: an allow-list of operation documents by the SHA-256 of their text.

With PCG_TRUSTED_DOCUMENTS=enforce only listed documents run (over HTTP and websockets): a
public API used by first-party clients then runs nothing a stranger wrote. `log` runs
everything and logs what is not listed (to build the list from real traffic); `off` checks
nothing. Each instance keeps the list in memory and reloads it every REFRESH_SECONDS, so a
check costs a hash and a set lookup, never a statement.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re

from models import TrustedDocument
from resolvers.errors import AppError

log = logging.getLogger("pcg.documents")

MODES = ("off", "log", "enforce")
REFRESH_SECONDS = 30
_OPERATION_NAME = re.compile(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


class DocumentNotTrusted(AppError):
    code = "DOCUMENT_NOT_TRUSTED"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class TrustedDocuments:
    def __init__(self, mode: str = "off") -> None:
        self.mode = mode
        self.bodies: dict[str, str] = {}
        self._logged: set[str] = set()

    @property
    def active(self) -> bool:
        return self.mode != "off"

    async def refresh(self) -> None:
        rows = await TrustedDocument.all().values_list("sha256", "body")
        self.bodies = dict(rows)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception as error:  # noqa: BLE001 - keep the last list; retry next round
                log.warning("trusted documents not reloaded: %s", error)

    def body(self, digest: str) -> str | None:
        """A trusted document doubles as a persisted query a client may send by hash only."""
        return self.bodies.get(digest)

    def check(self, document: str | None) -> None:
        if not self.active or document is None:
            return
        digest = sha256(document)
        if digest in self.bodies:
            return
        if self.mode == "log":
            if digest not in self._logged and len(self._logged) < 10_000:
                self._logged.add(digest)
                log.warning("untrusted document %s ran (PCG_TRUSTED_DOCUMENTS=log)", digest)
            return
        raise DocumentNotTrusted(
            "This server runs trusted documents only; this one is not in its list",
            sha256=digest,
        )


async def add(text: str, name: str | None = None) -> tuple[str, bool]:
    """Trust `text`; return its hash and whether it was new."""
    digest = sha256(text)
    if name is None:
        match = _OPERATION_NAME.search(text)
        name = match.group(1) if match else None
    _, created = await TrustedDocument.get_or_create(sha256=digest, defaults={"body": text, "name": name})
    return digest, created


async def remove(digest: str) -> bool:
    return bool(await TrustedDocument.filter(sha256=digest).delete())
