"""A real SMTP server in the test process (aiosmtpd, on 127.0.0.1 and a free port, in its own
thread) that keeps what it receives, and helpers to read links out of delivered messages.

The server can be stopped and started again on the same port (an outage), told to refuse
recipients (550) or to defer them (451), to require AUTH, STARTTLS or implicit TLS, and to
offer SMTPUTF8 or not.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()

    def link(self) -> str:
        """The one link carrying a token in the plain-text body."""
        links = re.findall(r"https?://\S+#token=[A-Za-z0-9_-]+", self.text)
        assert len(set(links)) == 1, links
        return links[0]

    def token(self) -> str:
        return self.link().rpartition("#token=")[2]


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.server.refuse:
            return "550 5.1.1 No such mailbox"
        if address in self.server.defer:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), raw, message))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    port: int = 0
    smtputf8: bool = True
    credentials: tuple[str, str] | None = None
    tls_context: object | None = None  # STARTTLS (required when set)
    implicit_tls_context: object | None = None  # smtps
    messages: list[Delivered] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()
        ) == self.credentials
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        kwargs: dict = {"enable_SMTPUTF8": self.smtputf8}
        if self.credentials:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True,
                       "auth_require_tls": self.tls_context is not None or self.implicit_tls_context is not None}
        if self.tls_context is not None:
            kwargs |= {"tls_context": self.tls_context, "require_starttls": True}
        if self.implicit_tls_context is not None:
            kwargs |= {"ssl_context": self.implicit_tls_context}
        # A generous start-up wait: on a loaded two-core machine the server thread can take a
        # while to answer the controller's own readiness probe (aiosmtpd's default is 5 s).
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=20, **kwargs
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def url(self, scheme: str = "smtp", query: str = "starttls=0") -> str:
        auth = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}" + (f"?{query}" if query else "")

    def received(self) -> list[Delivered]:
        with self.lock:
            return list(self.messages)

    def to(self, address: str) -> list[Delivered]:
        return [m for m in self.received() if address in m.rcpt_tos]


async def wait_until(condition, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `condition` (sync or async) until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
