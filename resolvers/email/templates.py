"""The emails the platform sends, rendered to a subject, a plain-text body and an HTML body.

Every value that comes from a person (a name, an organization's name) is cleaned before it is
used anywhere (`clean`: no control characters, CR and LF included, so nothing can start a new
header or a new paragraph of its own; at most NAME_MAX characters) and HTML-escaped in the
HTML body. Links are built here from PCG_PUBLIC_URL and a token of URL-safe characters; the
token sits after `#`, so a web app reads it in the browser and it never reaches a server's
access log or a Referer header. A token appears in the message only inside its link.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRODUCT = "PCG"
NAME_MAX = 80
SUBJECT_MAX = 200

# Where each link lands in the web app, which reads the token from the fragment and calls
# the mutation (verifyEmail, resetPassword, acceptInvite) when the person confirms.
PATHS = {
    "verify_email": "/verify-email",
    "reset_password": "/reset-password",
    "accept_invite": "/accept-invite",
}


def link(public_url: str, kind: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATHS[kind]}#token={token}"


def login_link(public_url: str) -> str:
    return f"{public_url.rstrip('/')}/login"


_SPACES = re.compile(r"\s+")


def clean(value: Any, max_len: int = NAME_MAX) -> str:
    """One line of text fit for a header or a sentence: control and format characters
    (CR, LF, NUL, bidi overrides, ...) become spaces, runs of spaces one, and the result is
    cut at `max_len` characters with an ellipsis."""
    text = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(value)
    )
    text = _SPACES.sub(" ", text).strip()
    if len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return text


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Parts:
    """A message as a greeting, paragraphs and one call to action; rendered twice."""

    subject: str
    greeting: str
    paragraphs: tuple[str, ...]
    action: str | None = None
    url: str | None = None
    footer: str = f"You received this email because of an action on your {PRODUCT} account."

    def render(self) -> Rendered:
        lines = [self.greeting, ""]
        for paragraph in self.paragraphs:
            lines += [paragraph, ""]
        if self.url:
            lines += [f"{self.action}:", self.url, ""]
        lines += ["--", f"{PRODUCT} · {self.footer}"]
        text = "\n".join(lines) + "\n"
        e = html.escape
        body = [f"<p>{e(self.greeting)}</p>"]
        body += [f"<p>{e(p)}</p>" for p in self.paragraphs]
        if self.url:
            body.append(f'<p><a href="{e(self.url, quote=True)}">{e(self.action or self.url)}</a></p>')
            body.append(f"<p>Or paste this address into your browser:<br>{e(self.url)}</p>")
        body.append(f'<hr><p style="color:#666;font-size:12px">{e(PRODUCT)} · {e(self.footer)}</p>')
        document = (
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            f"<title>{e(self.subject)}</title></head><body>" + "".join(body) + "</body></html>\n"
        )
        return Rendered(subject=clean(self.subject, SUBJECT_MAX), text=text, html=document)


def _hello(context: dict[str, Any]) -> str:
    name = clean(context.get("name") or "")
    return f"Hello {name}," if name else "Hello,"


def verify_email(c: dict[str, Any]) -> _Parts:
    return _Parts(
        subject=f"Verify your email address for {PRODUCT}",
        greeting=_hello(c),
        paragraphs=(
            f"Welcome to {PRODUCT}. Confirm that this address is yours to finish setting up "
            "your account; until then you cannot accept invitations or create more than one "
            "organization.",
            f"The link works once and expires in {c['expires_in']}. If you did not sign up, "
            "ignore this email: nothing happens without the link.",
        ),
        action="Verify your email address",
        url=c["link"],
    )


def signup_existing(c: dict[str, Any]) -> _Parts:
    paragraphs = [
        f"Someone (perhaps you) just tried to sign up for {PRODUCT} with this email address, "
        "which already has an account. No new account was created and nothing changed.",
        f"If it was you, log in instead: {c['login_link']}",
    ]
    if c.get("link"):
        paragraphs.append(
            f"Forgot your password? The link below sets a new one; it works once and expires "
            f"in {c['expires_in']}. If it was not you, ignore this email."
        )
    return _Parts(
        subject=f"Someone tried to sign up for {PRODUCT} with your email address",
        greeting=_hello(c),
        paragraphs=tuple(paragraphs),
        action="Choose a new password" if c.get("link") else None,
        url=c.get("link"),
    )


def password_reset(c: dict[str, Any]) -> _Parts:
    return _Parts(
        subject=f"Reset your {PRODUCT} password",
        greeting=_hello(c),
        paragraphs=(
            "Someone (perhaps you) asked to reset the password of your account. Setting a new "
            "password ends every session signed in to your account.",
            f"The link works once and expires in {c['expires_in']}. If you did not ask, ignore "
            "this email: your password stays as it is.",
        ),
        action="Choose a new password",
        url=c["link"],
    )


def password_changed(c: dict[str, Any]) -> _Parts:
    return _Parts(
        subject=f"Your {PRODUCT} password was changed",
        greeting=_hello(c),
        paragraphs=(
            "The password of your account was just changed with a reset link, and every "
            "session signed in to your account was ended.",
            "If you did not do this, reset your password again at once and tell your "
            "organization's administrators.",
        ),
        action="Log in",
        url=c["login_link"],
    )


def invite(c: dict[str, Any]) -> _Parts:
    inviter = clean(c["inviter"])
    org = clean(c["organization"])
    return _Parts(
        subject=f"{clean(inviter, 40)} invited you to {clean(org, 60)} on {PRODUCT}",
        greeting="Hello,",
        paragraphs=(
            f"{inviter} invited you to join the organization “{org}” on {PRODUCT} as "
            f"{c['role']}.",
            f"Accept with an account of this email address (sign up first if you have none, "
            f"and verify the address). The invitation expires in {c['expires_in']}.",
        ),
        action="Accept the invitation",
        url=c["link"],
        footer="You received this email because someone invited this address.",
    )


TEMPLATES: dict[str, Callable[[dict[str, Any]], _Parts]] = {
    "verify_email": verify_email,
    "signup_existing": signup_existing,
    "password_reset": password_reset,
    "password_changed": password_changed,
    "invite": invite,
}


def render(template: str, context: dict[str, Any]) -> Rendered:
    return TEMPLATES[template](context).render()
