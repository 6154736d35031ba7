"""The email domain: the outbox of messages a write decided to send, and the single-use
tokens that links in those messages carry (email verification, password reset).

An outbox row is written in the same transaction as the change that wants it sent
(resolvers/unit_of_work.py `work.email`), already rendered, and delivered afterwards by the
outbox worker (resolvers/email/worker.py): a rolled-back write sends nothing, and an SMTP
outage only delays what is queued.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User


class OutboxStatus(str, Enum):
    PENDING = "pending"  # waiting for its next attempt (`next_attempt_at`)
    SENDING = "sending"  # claimed by a worker until `lease_until`
    SENT = "sent"  # accepted by the SMTP server (or logged, without SMTP); bodies scrubbed
    DEAD = "dead"  # refused for good, or out of attempts: kept for operators (`pcg outbox`)


class OutboxEmail(Model):
    """One message to one recipient, rendered when it was queued."""

    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    # Which template rendered it (verify_email, invite, ...): a metric label and for operators.
    template = fields.CharField(max_length=64)
    to_address = fields.CharField(max_length=254)
    # The account it concerns, when there is one (not for an invite to a stranger).
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="outbox_emails", null=True, on_delete=fields.SET_NULL
    )
    user_id: int | None
    subject = fields.CharField(max_length=255)
    # The bodies hold the link, and so the token: emptied once the message is sent.
    text_body = fields.TextField()
    html_body = fields.TextField()
    # Fixed when queued, so a message sent twice (a worker died between the SMTP server's
    # acceptance and marking it sent) is recognisable as one by mail clients.
    message_id = fields.CharField(max_length=255)
    status = fields.CharEnumField(OutboxStatus, max_length=16, default=OutboxStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    # While SENDING: the claim's random token and how long it holds; a lapsed claim (its
    # worker died) is taken again.
    claim = fields.CharField(max_length=32, null=True)
    lease_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "email_outbox"
        # The worker's question: what is due, oldest first.
        indexes = (("status", "next_attempt_at"),)


class EmailTokenPurpose(str, Enum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


class EmailToken(Model):
    """A single-use secret sent in a link, stored as its SHA-256 only.

    Tokens are 256-bit random, so a slow hash would buy nothing. A token is bound to the
    address it was sent to, so one sent before an email change verifies nothing after it."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="email_tokens", on_delete=fields.CASCADE
    )
    user_id: int
    purpose = fields.CharEnumField(EmailTokenPurpose, max_length=32)
    token_hash = fields.CharField(max_length=64, unique=True)
    email = fields.CharField(max_length=254)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "email_token"
        indexes = (("user", "purpose"),)
