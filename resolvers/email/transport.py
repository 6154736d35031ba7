"""How a queued email leaves the process: over SMTP (aiosmtplib), or into the log.

`PCG_SMTP_URL`:

    smtp://[user:password@]host[:port]            port 25; STARTTLS when the server offers it
    smtp://host:587?starttls=1                    STARTTLS required (refuses to send without it)
    smtp://host:25?starttls=0                     never STARTTLS (a relay on localhost)
    smtps://[user:password@]host[:port]           implicit TLS, port 465
    ...?cafile=/etc/ssl/internal-ca.pem           trust this CA bundle (an internal relay)

The user and password are percent-decoded (`p%40ss` is `p@ss`). Certificates are always
verified. Without a URL, outside production, messages are written to the log instead (the
embedded profile: `make demo` users read the link there); in production nothing is sent and
the outbox keeps every message until an SMTP URL is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.settings import Settings

import email.policy
import email.utils
import logging
import re
import ssl
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from models import OutboxEmail

log = logging.getLogger("pcg.email")

_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class PermanentFailure(Exception):
    """The server refused this message for good (5xx, an address it cannot take): retrying
    would only be refused again, so the message goes to DEAD at once."""


class TransientFailure(Exception):
    """Worth retrying later: the server is unreachable, timed out, or answered 4xx."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool | None  # None: when offered (aiosmtplib's default)
    username: str | None
    password: str | None
    cafile: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        """Raises ValueError with a message that never repeats the URL (it holds a password)."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("must name a host (smtp://host:port)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"starttls", "cafile"})
        if unknown:
            raise ValueError(f"has unknown parameters: {', '.join(unknown)} (known: starttls, cafile)")
        starttls = None
        if "starttls" in query:
            value = query["starttls"][-1].lower()
            if value not in _FLAGS:
                raise ValueError("has starttls= that is not 1 or 0")
            starttls = _FLAGS[value]
        implicit = parts.scheme == "smtps"
        if implicit and starttls:
            raise ValueError("cannot ask for STARTTLS on smtps:// (already TLS)")
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls=False if implicit else starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            cafile=query["cafile"][-1] if "cafile" in query else None,
        )


def parse_sender(value: str) -> tuple[str, str]:
    """PCG_MAIL_FROM ("PCG <no-reply@example.com>" or a bare address): (display name, address)."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("must be one line")
    name, address = email.utils.parseaddr(value)
    if not address or not mailbox_ok(address, dotless_domain=True):
        raise ValueError("must be an address, optionally with a name: PCG <no-reply@example.com>")
    return name, address


# What the outbox mails to: one mailbox, no quoting, no comments, no routes. The API refuses
# anything else at sign-up (resolvers/validation.py); this is the transport's own check, so a
# row written by older code cannot put a second recipient or a header into the envelope.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u0080-\U0010ffff]{1,64}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.\-\u0080-\U0010ffff]{1,253}$")


def mailbox_ok(address: str, *, dotless_domain: bool = False) -> bool:
    local, at, domain = address.rpartition("@")
    return (bool(at) and bool(_LOCAL.match(local)) and bool(_DOMAIN.match(domain))
            and ("." in domain or dotless_domain))


def envelope_address(address: str, *, dotless_domain: bool = False) -> str:
    """The address as SMTP carries it: the domain in IDNA (ASCII), the local part as is (a
    non-ASCII local part needs the server's SMTPUTF8)."""
    if not mailbox_ok(address, dotless_domain=dotless_domain):
        raise PermanentFailure("not a deliverable address")
    local, _, domain = address.rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise PermanentFailure("the domain is not a valid internationalized name") from None
    return f"{local}@{ascii_domain}"


def build_message(row: OutboxEmail, sender: tuple[str, str]) -> EmailMessage:
    """The MIME message of an outbox row: text and HTML alternatives, headers from fixed or
    cleaned values only (the subject was cleaned when rendered; the policy refuses CR/LF in
    any header, a second line of defence)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    name, address = sender
    msg["From"] = Address(display_name=name, addr_spec=address) if name else address
    msg["To"] = envelope_address(row.to_address)
    msg["Subject"] = row.subject
    msg["Date"] = email.utils.format_datetime(row.created_at)
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row.text_body)
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html")
    return msg


class SmtpTransport:
    """One connection per batch of messages; each message is its own SMTP transaction."""

    name = "smtp"

    def __init__(self, config: SmtpConfig, sender: tuple[str, str], timeout: float) -> None:
        self.config = config
        self.sender = sender
        self.timeout = timeout

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        context = ssl.create_default_context(cafile=c.cafile) if c.cafile else None
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, username=c.username, password=c.password,
            use_tls=c.implicit_tls, start_tls=c.starttls, tls_context=context,
            timeout=self.timeout,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SmtpSession]:
        client = self._client()
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as error:
            # Wrong credentials are an operator's to fix; messages wait for it (and retry).
            raise TransientFailure(f"SMTP authentication failed: {error.code} {error.message}") from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
            raise TransientFailure(f"cannot reach the SMTP server: {_describe(error)}") from None
        try:
            yield SmtpSession(client, self.sender)
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


class SmtpSession:
    def __init__(self, client: aiosmtplib.SMTP, sender: tuple[str, str]) -> None:
        self.client = client
        self.sender = sender

    async def send(self, row: OutboxEmail) -> None:
        message = build_message(row, self.sender)
        try:
            refused, _ = await self.client.send_message(
                message, sender=envelope_address(self.sender[1], dotless_domain=True), recipients=[envelope_address(row.to_address)]
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            _raise_for([(e.code, e.message) for e in error.recipients])
        except aiosmtplib.SMTPNotSupported as error:
            raise PermanentFailure(str(error)) from None
        except aiosmtplib.SMTPResponseException as error:
            _raise_for([(error.code, error.message)])
        except (aiosmtplib.SMTPException, OSError) as error:
            raise TransientFailure(_describe(error)) from None
        if refused:
            _raise_for([(r.code, r.message) for r in refused.values()])


def _raise_for(responses: list[tuple[int, str]]) -> None:
    text = "; ".join(f"{code} {message}" for code, message in responses)
    if all(500 <= code < 600 for code, _ in responses):
        raise PermanentFailure(f"refused: {text}")
    raise TransientFailure(f"deferred: {text}")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_LINK = re.compile(r"https?://\S+")


class LogTransport:
    """The embedded profile's transport: no SMTP server; each message is logged, with its
    links, and counts as sent. Only used outside production (server/settings.py), since the
    links hold live tokens."""

    name = "log"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[LogTransport]:
        yield self

    async def send(self, row: OutboxEmail) -> None:
        links = " ".join(_LINK.findall(row.text_body)) or "(none)"
        log.info(
            'email %s to %s: "%s" (not sent: PCG_SMTP_URL is not set); link: %s',
            row.id, row.to_address, row.subject, links,
        )


Transport = SmtpTransport | LogTransport


def make_transport(settings: Settings) -> Transport | None:
    """The settings' transport; None in production without an SMTP URL (nothing is sent)."""
    sender = parse_sender(settings.mail_from)
    if settings.smtp_url:
        return SmtpTransport(SmtpConfig.parse(settings.smtp_url), sender, settings.smtp_timeout)
    if settings.is_production:
        return None
    return LogTransport()
