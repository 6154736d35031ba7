"""Emails through a real SMTP server (aiosmtpd in the test process): what arrives, that its
link works through the API, that a rolled-back write sends nothing, that an outage loses
nothing, and that refusals end DEAD."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from models import AuditEntry, OutboxEmail, OutboxStatus, User
from resolvers.access import Access
from resolvers.context import Context
from resolvers.unit_of_work import UnitOfWork, unit_of_work
from server.settings import replace
from tests.conftest import PASSWORD
from tests.smtp_support import SmtpServer, wait_until

SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { ok message } }"
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"
VERIFY = "mutation($i: VerifyEmailInput!) { verifyEmail(input: $i) { ok email } }"
REQUEST_RESET = "mutation($i: RequestPasswordResetInput!) { requestPasswordReset(input: $i) { ok message } }"
VIEWER = "{ viewer { emailVerified user { email } } }"


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, smtp_server):
    """The suite's settings with the outbox worker on, sending to the test's SMTP server, and
    retries a few milliseconds apart."""
    return replace(settings, smtp_url=smtp_server.url(), outbox_worker=True, outbox_retry_seconds=0.02)


def sent(address: str | None = None):
    """A condition for wait_until: every outbox row (to `address`) is SENT. The SMTP server
    has the message a moment before the worker records it."""

    async def check() -> bool:
        qs = OutboxEmail.all() if address is None else OutboxEmail.filter(to_address=address)
        return await qs.exclude(status=OutboxStatus.SENT).count() == 0 and await qs.exists()

    return check


async def sign_up(gql, email: str, name: str = "Ada") -> dict:
    return (await gql.ok(SIGN_UP, {"i": {"email": email, "name": name, "password": PASSWORD}}))["signUp"]


async def log_in(gql, email: str, password: str = PASSWORD) -> str:
    return (await gql.ok(LOG_IN, {"i": {"email": email, "password": password}}))["logIn"]["accessToken"]


async def test_sign_up_mails_a_verification_link_that_works_through_the_api(gql, smtp_server):
    assert (await sign_up(gql, "Ada@Example.test", "Ada Lovelace"))["ok"] is True
    await wait_until(lambda: smtp_server.to("ada@example.test"), what="the verification email")
    [mail] = smtp_server.received()

    # The envelope and the headers: one recipient, from PCG_MAIL_FROM, a stable Message-ID.
    assert (mail.mail_from, mail.rcpt_tos) == ("no-reply@localhost", ["ada@example.test"])
    headers = mail.message
    assert headers["To"] == "ada@example.test"
    assert headers["From"] == "PCG <no-reply@localhost>"
    assert headers["Subject"] == "Verify your email address for PCG"
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["Date"] and headers["Message-ID"].endswith("@localhost>")
    assert headers.get_content_type() == "multipart/alternative"
    assert "Hello Ada Lovelace," in mail.text and "PCG" in mail.text
    link = mail.link()
    assert link.startswith("http://127.0.0.1:8000/verify-email#token=")
    token = mail.token()
    # The token is in the message only inside its link (the HTML shows the link twice).
    assert mail.text.count(token) == mail.text.count(link) == 1
    assert mail.html.count(token) == 2 and f'href="{link}"' in mail.html
    assert token not in headers["Subject"] + headers["Message-ID"]

    # The account can log in before verifying; verifying is one call with the link's token.
    token_of_ada = await log_in(gql, "ada@example.test")
    assert (await gql.ok(VIEWER, token=token_of_ada))["viewer"]["emailVerified"] is False
    assert (await gql.ok(VERIFY, {"i": {"token": token}}))["verifyEmail"] == {"ok": True, "email": "ada@example.test"}
    assert (await gql.ok(VIEWER, token=token_of_ada))["viewer"]["emailVerified"] is True
    again = await gql.error(VERIFY, {"i": {"token": token}})
    assert (again["extensions"]["code"], again["extensions"]["reason"]) == ("BAD_USER_INPUT", "TOKEN_INVALID")

    # Sent: the stored bodies, which held the token, are gone.
    await wait_until(sent("ada@example.test"), what="the row marked sent")
    row = await OutboxEmail.get(to_address="ada@example.test")
    assert (row.status, row.attempts, row.text_body, row.html_body) == (OutboxStatus.SENT, 1, "", "")
    assert row.message_id == headers["Message-ID"] and row.sent_at is not None
    actions = await AuditEntry.filter(organization_id=None).order_by("id").values_list("action", flat=True)
    assert actions == ["user.sign_up", "user.verify_email"]


async def test_a_rolled_back_write_sends_nothing(app, gql, smtp_server, settings, monkeypatch):
    """A failure inside the unit of work after the email was queued: no row, no message."""

    async def failing_audit(self, *args, **kwargs):
        raise RuntimeError("forced failure after work.email")

    original_email = UnitOfWork.email
    queued = []

    async def email_then_remember(self, *args, **kwargs):
        row = await original_email(self, *args, **kwargs)
        queued.append(row.id)
        return row

    monkeypatch.setattr(UnitOfWork, "email", email_then_remember)
    monkeypatch.setattr(UnitOfWork, "audit", failing_audit)
    body = await gql.raw(SIGN_UP, {"i": {"email": "gone@example.test", "name": "G", "password": PASSWORD}})
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert queued, "the email was queued before the failure"
    # The same in code, with a failure of the write's own.
    ctx = Context(settings=settings, access=Access(None), broadcast=None)
    with pytest.raises(RuntimeError):
        async with unit_of_work(ctx) as work:
            await work.email("also-gone@example.test", "password_changed", {"name": "X", "login_link": "http://x/login"})
            raise RuntimeError("the write fails after queueing")
    monkeypatch.undo()

    assert not await OutboxEmail.exists()
    assert not await User.exists(email="gone@example.test")
    assert await app.state.mailer.drain() == 0
    # A write that commits afterwards is delivered, and is the only message the server saw.
    await sign_up(gql, "kept@example.test")
    await wait_until(lambda: smtp_server.received(), what="the committed write's email")
    assert [m.rcpt_tos for m in smtp_server.received()] == [["kept@example.test"]]


async def test_an_smtp_outage_loses_nothing(app, gql, smtp_server):
    await sign_up(gql, "first@example.test")
    await wait_until(lambda: smtp_server.to("first@example.test"), what="the first email")

    smtp_server.stop()  # the server goes away mid-way
    for n in range(3):
        await sign_up(gql, f"during{n}@example.test")
    waiting = OutboxEmail.filter(to_address__startswith="during")

    async def each_failed_twice() -> bool:
        rows = await waiting
        return len(rows) == 3 and all(r.attempts >= 2 and r.status is OutboxStatus.PENDING for r in rows)

    await wait_until(each_failed_twice, what="failed attempts while the server is down")
    row = await waiting.first()
    assert "cannot reach the SMTP server" in row.last_error and row.sent_at is None

    smtp_server.start()  # back, on the same port
    await wait_until(lambda: len(smtp_server.received()) == 4, what="delivery after the outage")
    await wait_until(sent(), what="every row marked sent")
    rows = await OutboxEmail.all()
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    received = smtp_server.received()
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(r.to_address for r in rows)
    # Exactly once each: one delivery per outbox row.
    assert sorted(m.message["Message-ID"] for m in received) == sorted(r.message_id for r in rows)
    # Each link still works after the delay.
    mail = smtp_server.to("during2@example.test")[0]
    assert (await gql.ok(VERIFY, {"i": {"token": mail.token()}}))["verifyEmail"]["ok"]


async def test_a_refused_recipient_is_dead_at_once_and_a_deferred_one_is_retried(app, gql, smtp_server):
    smtp_server.refuse.add("nobody@example.test")
    smtp_server.defer.add("later@example.test")
    await sign_up(gql, "nobody@example.test")
    await sign_up(gql, "later@example.test")
    await sign_up(gql, "fine@example.test")

    async def settled() -> bool:
        dead = await OutboxEmail.get_or_none(to_address="nobody@example.test", status=OutboxStatus.DEAD)
        later = await OutboxEmail.get(to_address="later@example.test")
        return dead is not None and later.attempts >= 2 and bool(smtp_server.to("fine@example.test"))

    await wait_until(settled, what="the refusal and the retries")
    dead = await OutboxEmail.get(to_address="nobody@example.test")
    assert dead.attempts == 1 and "550" in dead.last_error
    assert dead.text_body  # kept whole for operators
    smtp_server.defer.clear()
    await wait_until(lambda: smtp_server.to("later@example.test"), what="the deferred email")
    await wait_until(sent("later@example.test"), what="the deferred email marked sent")
    assert not smtp_server.to("nobody@example.test")

    await app.state.mailer.sample()
    metrics = generate_latest().decode()  # the process's registry, as /metrics serves it
    assert 'pcg_emails_failed_total{outcome="dead",template="verify_email"}' in metrics
    assert 'pcg_emails_failed_total{outcome="retry",template="verify_email"}' in metrics
    assert 'pcg_emails_sent_total{template="verify_email"}' in metrics
    assert "pcg_outbox_dead 1.0" in metrics
    assert "pcg_outbox_pending 0.0" in metrics


@pytest.mark.settings(outbox_max_attempts=3)
async def test_a_message_out_of_attempts_is_kept_dead(gql, smtp_server):
    smtp_server.defer.add("slow@example.test")
    await sign_up(gql, "slow@example.test")

    async def dead() -> bool:
        return await OutboxEmail.exists(to_address="slow@example.test", status=OutboxStatus.DEAD)

    await wait_until(dead, what="the third failed attempt")
    row = await OutboxEmail.get(to_address="slow@example.test")
    assert row.attempts == 3 and "451" in row.last_error
    assert row.claim is None and row.lease_until is None


async def test_an_emailed_invite_is_accepted_with_its_link_once_the_address_is_verified(gql, factory, smtp_server):
    from tests.conftest import gid

    owner = await factory.user("Olive")
    org = await factory.org(owner, "acme")
    invite = """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invite { id } } }"""
    await gql.ok(invite, {"i": {"organizationId": gid("Organization", org.id), "email": "Newbie@Example.test"}},
                 owner.token)
    await sign_up(gql, "newbie@example.test", "Newbie")
    await wait_until(lambda: len(smtp_server.to("newbie@example.test")) == 2, what="the invite and the verification")
    by_subject = {m.message["Subject"]: m for m in smtp_server.to("newbie@example.test")}
    invitation = by_subject["Olive invited you to Acme on PCG"]
    verification = by_subject["Verify your email address for PCG"]
    assert "as member." in invitation.text and "expires in 7 days" in invitation.text

    newbie = await log_in(gql, "newbie@example.test")
    accept = "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { organization { slug } member { role } } }"
    error = await gql.error(accept, {"i": {"token": invitation.token()}}, newbie)
    assert error["extensions"]["code"] == "EMAIL_NOT_VERIFIED"
    await gql.ok(VERIFY, {"i": {"token": verification.token()}})
    data = await gql.ok(accept, {"i": {"token": invitation.token()}}, newbie)
    assert data["acceptInvite"] == {"organization": {"slug": "acme"}, "member": {"role": "MEMBER"}}
