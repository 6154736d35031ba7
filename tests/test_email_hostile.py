"""Hostile input on the way to an inbox: header injection through names, long names, odd and
internationalized addresses; and the transports that carry it: STARTTLS with AUTH, implicit
TLS, an untrusted certificate, the log of the embedded profile, production without SMTP."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme

from models import OrgRole, OutboxEmail, OutboxStatus
from server.app import create_app
from server.settings import replace
from tests.conftest import PASSWORD, gid
from tests.smtp_support import SmtpServer, wait_until
from tests.test_email_delivery import SIGN_UP, sent, sign_up

INVITE = """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invite { id } inviteToken } }"""


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, smtp_server):
    return replace(settings, smtp_url=smtp_server.url(), outbox_worker=True, outbox_retry_seconds=0.02)


async def test_a_name_with_cr_lf_cannot_add_headers_or_recipients(gql, smtp_server):
    name = "Mallory\r\nBcc: victim@example.test\r\nX-Injected: 1\r\n\r\nClick http://evil.test"
    await sign_up(gql, "mallory@example.test", name)
    await wait_until(lambda: smtp_server.received(), what="the email")
    [mail] = smtp_server.received()
    assert mail.rcpt_tos == ["mallory@example.test"]
    headers = {k.lower() for k in mail.message.keys()}
    assert not headers & {"bcc", "x-injected"}
    assert b"\r\nBcc:" not in mail.raw and b"X-Injected" not in mail.raw.split(b"\r\n\r\n")[0]
    # The name is one line of the body, cleaned of its line breaks.
    assert "Hello Mallory Bcc: victim@example.test X-Injected: 1 Click http://evil.test," in mail.text
    assert "Mallory Bcc: victim@example.test X-Injected: 1 Click http://evil.test" in mail.html


async def test_an_invite_from_hostile_names_keeps_one_subject_line(gql, factory, smtp_server):
    owner = await factory.user("Eve\nSubject: hacked\r\nBcc: all@example.test")
    org = await factory.org(owner, "acme")
    from models import Organization

    await Organization.filter(id=org.id).update(name="<b>Acme</b>\r\nReply-To: evil@example.test" + "x" * 150)
    data = await gql.ok(INVITE, {"i": {"organizationId": gid("Organization", org.id),
                                        "email": "new@example.test", "role": "MEMBER"}}, owner.token)
    await wait_until(lambda: smtp_server.to("new@example.test"), what="the invite")
    [mail] = smtp_server.to("new@example.test")
    assert mail.rcpt_tos == ["new@example.test"]
    subject = mail.message["Subject"]
    assert "\n" not in subject and "\r" not in subject and len(subject) <= 200
    assert subject.startswith("Eve Subject: hacked Bcc: all@example.te… invited you to <b>Acme</b> Reply-To")
    assert mail.message.get_all("Subject") == [subject]
    assert mail.message["Reply-To"] is None and mail.message["Bcc"] is None
    # HTML-escaped in the HTML body, whole (but cut) in the text.
    assert "&lt;b&gt;Acme&lt;/b&gt;" in mail.html and "<b>Acme" not in mail.html
    assert "“<b>Acme</b> Reply-To: evil@example.test" in mail.text
    # The link is the invite's own token; the payload still shows it to the admin.
    assert mail.token() == data["inviteMember"]["inviteToken"]
    assert mail.link().startswith("http://127.0.0.1:8000/accept-invite#token=")


async def test_a_very_long_name_is_cut_in_the_email(gql, smtp_server):
    await sign_up(gql, "long@example.test", "N" * 200)
    await wait_until(lambda: smtp_server.received())
    text = smtp_server.received()[0].text
    assert "N" * 79 + "…" in text and "N" * 80 not in text


@pytest.mark.parametrize("email", [
    "a\r\nRCPT TO:<x@example.test>@example.test",
    "victim@example.test\r\nBcc: x@example.test",
    "a>,b@example.test",
    "<a@example.test>",
    "a@example.test, b@example.test",
    '"quoted"@example.test',
    "a b@example.test",
])
async def test_addresses_that_could_smuggle_a_recipient_are_refused_at_sign_up(gql, email):
    body = await gql.raw(SIGN_UP, {"i": {"email": email, "name": "X", "password": PASSWORD}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}
    assert not await OutboxEmail.exists()


async def test_unicode_addresses_use_smtputf8_and_idna(gql, smtp_server):
    await sign_up(gql, "Jörg@Exämple.test", "Jörg")
    await sign_up(gql, "ascii@bücher.test", "Ascii")
    await wait_until(lambda: len(smtp_server.received()) == 2)
    by_rcpt = {m.rcpt_tos[0]: m for m in smtp_server.received()}
    # The domain travels as IDNA; a non-ASCII local part needs (and got) SMTPUTF8.
    assert set(by_rcpt) == {"jörg@xn--exmple-cua.test", "ascii@xn--bcher-kva.test"}
    assert by_rcpt["jörg@xn--exmple-cua.test"].message["To"] == "jörg@xn--exmple-cua.test"
    assert "Hello Jörg," in by_rcpt["jörg@xn--exmple-cua.test"].text


@pytest.fixture
def ascii_only_server():
    server = SmtpServer(smtputf8=False)
    server.start()
    yield server
    server.stop()


async def test_a_server_without_smtputf8_gets_idna_domains_and_refuses_nothing_else(
    app, settings, gql, ascii_only_server
):
    app.state.mailer.transport.config = type(app.state.mailer.transport.config).parse(ascii_only_server.url())
    await sign_up(gql, "ascii@bücher.test")
    await sign_up(gql, "jörg@example.test")
    await wait_until(lambda: ascii_only_server.received(), what="the ASCII-envelope email")
    assert [m.rcpt_tos for m in ascii_only_server.received()] == [["ascii@xn--bcher-kva.test"]]

    async def dead() -> bool:
        return await OutboxEmail.exists(to_address="jörg@example.test", status=OutboxStatus.DEAD)

    await wait_until(dead, what="the non-ASCII mailbox to end dead")
    row = await OutboxEmail.get(to_address="jörg@example.test")
    assert row.attempts == 1 and "SMTPUTF8" in row.last_error


# -- TLS and authentication ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def _server_context(ca) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def tls_servers(ca):
    starttls = SmtpServer(credentials=("mailer", "s3cret:p@ss"), tls_context=_server_context(ca))
    implicit = SmtpServer(implicit_tls_context=_server_context(ca))
    starttls.start()
    implicit.start()
    yield starttls, implicit
    starttls.stop()
    implicit.stop()


async def _send_with(app_settings, url: str, address: str, gql_factory) -> None:
    """Queue one email and make one attempt to deliver it with a worker using `url`."""
    from resolvers.email.worker import OutboxWorker

    worker = OutboxWorker(replace(app_settings, smtp_url=url, smtp_timeout=5))
    await sign_up(gql_factory, address)
    await worker.run_once()


@pytest.mark.settings(outbox_worker=False)
async def test_starttls_with_auth_and_implicit_tls_deliver_and_an_unknown_ca_does_not(
    settings, gql, tls_servers, ca, tmp_path
):
    starttls, implicit = tls_servers
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    settings = replace(settings, outbox_worker=False)
    # The password has characters a URL must percent-encode.
    url = f"smtp://mailer:s3cret%3Ap%40ss@127.0.0.1:{starttls.port}?starttls=1&cafile={cafile}"
    await _send_with(settings, url, "tls@example.test", gql)
    assert [m.rcpt_tos for m in starttls.received()] == [["tls@example.test"]]

    await _send_with(settings, f"smtps://127.0.0.1:{implicit.port}?cafile={cafile}", "smtps@example.test", gql)
    assert [m.rcpt_tos for m in implicit.received()] == [["smtps@example.test"]]

    # Without the CA the certificate is not trusted: nothing is sent, the message waits.
    await _send_with(settings, f"smtps://127.0.0.1:{implicit.port}", "untrusted@example.test", gql)
    row = await OutboxEmail.get(to_address="untrusted@example.test")
    assert row.status is OutboxStatus.PENDING and "CERTIFICATE_VERIFY_FAILED" in row.last_error
    # A wrong password: the message waits too (an operator's mistake, not the recipient's).
    await _send_with(settings, f"smtp://mailer:wrong@127.0.0.1:{starttls.port}?starttls=1&cafile={cafile}",
                     "wrongpass@example.test", gql)
    row = await OutboxEmail.get(to_address="wrongpass@example.test")
    assert row.status is OutboxStatus.PENDING and "authentication failed" in row.last_error
    assert len(starttls.received()) == 1 and len(implicit.received()) == 1


# -- without SMTP ----------------------------------------------------------------------------


@pytest.fixture
def log_settings(settings):
    return replace(settings, smtp_url="")


async def test_the_embedded_profile_logs_each_email_with_its_link(log_settings, caplog):
    import httpx
    from asgi_lifespan import LifespanManager

    from tests.conftest import GraphQLClient

    caplog.set_level(logging.INFO, logger="pcg.email")
    app = create_app(log_settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await sign_up(GraphQLClient(http), "demo@example.test")
            await wait_until(sent("demo@example.test"), what="the logged email")
    [line] = [r.getMessage() for r in caplog.records if "demo@example.test" in r.getMessage()]
    assert "not sent: PCG_SMTP_URL is not set" in line
    assert "link: http://127.0.0.1:8000/verify-email#token=" in line


async def test_production_without_smtp_keeps_emails_queued(settings, caplog):
    import httpx
    from asgi_lifespan import LifespanManager

    from tests.conftest import GraphQLClient

    production = replace(settings, smtp_url="", env="production")
    app = create_app(production)
    async with LifespanManager(app):
        assert app.state.mailer.transport is None
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await sign_up(GraphQLClient(http), "prod@example.test")
        row = await OutboxEmail.get(to_address="prod@example.test")
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    assert any("PCG_SMTP_URL is not set" in r.getMessage() for r in caplog.records)
    # No log line anywhere carries the link's token.
    assert not any("#token=" in r.getMessage() for r in caplog.records)


async def test_an_invite_admin_member_role_reaches_the_email(gql, factory, smtp_server):
    owner = await factory.user("Olive")
    org = await factory.org(owner, "roles")
    await gql.ok(INVITE, {"i": {"organizationId": gid("Organization", org.id),
                                "email": "adm@example.test", "role": OrgRole.ADMIN.name}}, owner.token)
    await wait_until(lambda: smtp_server.to("adm@example.test"))
    assert "as admin." in smtp_server.to("adm@example.test")[0].text
