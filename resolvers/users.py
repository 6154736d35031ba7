"""Sign-up, log-in and the viewer's own data."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from models import User
from resolvers import validation
from resolvers.auth import hash_password, issue_access_token, verify_password
from resolvers.errors import BadInput, Conflict, Unauthenticated
from resolvers.writes import transaction


def public(user: User) -> dict:
    return {"id": user.id, "email": user.email, "name": user.name}


async def sign_up(ctx, email: str, name: str, password: str):
    email = validation.email(email)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    password = validation.password(password)
    password_hash = hash_password(password)  # slow on purpose: outside the transaction
    if await User.exists(email=email):
        raise Conflict("An account with this email already exists", field="email")
    try:
        async with transaction(ctx) as tx:
            user = await User.create(email=email, name=name, password_hash=password_hash)
            await tx.audit(
                "user.sign_up", "User", user.id, organization_id=None, after=public(user),
                actor_id=user.id,
            )
    except IntegrityError:
        raise Conflict("An account with this email already exists", field="email") from None
    token, expires = issue_access_token(user, ctx.settings.secret_key, ctx.settings.access_token_ttl)
    return user, token, expires


async def log_in(ctx, email: str, password: str):
    if not isinstance(email, str) or not isinstance(password, str) or len(password) > 1024:
        raise BadInput("Email and password are required")
    user = await User.get_or_none(email=email.strip().lower(), is_active=True)
    if not verify_password(user.password_hash if user else None, password):
        raise Unauthenticated("Wrong email or password", reason="BAD_CREDENTIALS")
    token, expires = issue_access_token(user, ctx.settings.secret_key, ctx.settings.access_token_ttl)
    return user, token, expires
