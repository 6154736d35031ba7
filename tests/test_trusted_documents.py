"""Trusted documents: with PCG_TRUSTED_DOCUMENTS=enforce only listed documents run, over HTTP
and websockets; `log` runs everything and logs the rest; `pcg documents` manages the list."""

from __future__ import annotations

import hashlib
import logging
import subprocess

import pytest

from resolvers import documents
from tests.processes import PCG, subprocess_env
from tests.querycount import count_statements
from tests.wsclient import TRANSPORT_WS, GraphQLWS

LISTED = "query Me { viewer { user { id } } }"


def _view(app):
    return next(route.endpoint for route in app.routes if getattr(route, "path", None) == "/graphql")


async def _trust(app, text: str) -> None:
    await documents.add(text)
    await _view(app).documents.refresh()


@pytest.mark.settings(trusted_documents="enforce")
async def test_enforce_runs_listed_documents_only(app, gql, factory):
    owner = await factory.user()
    await _trust(app, LISTED)
    assert (await gql.ok(LISTED, token=owner.token))["viewer"]["user"]["id"] == owner.gid
    with count_statements() as log:
        error = await gql.error("query Other { viewer { user { name } } }", token=owner.token)
    assert error["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED" and log.count == 0
    # One character more is another document.
    assert await gql.code(LISTED + " ", token=owner.token) == "DOCUMENT_NOT_TRUSTED"


@pytest.mark.settings(trusted_documents="enforce")
async def test_a_trusted_document_runs_by_its_hash_alone(app, client, factory):
    owner = await factory.user()
    await _trust(app, LISTED)
    ext = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(LISTED.encode()).hexdigest()}}
    body = (await client.post("/graphql", json={"extensions": ext},
                              headers={"authorization": f"Bearer {owner.token}"})).json()
    assert body["data"]["viewer"]["user"]["id"] == owner.gid


@pytest.mark.settings(trusted_documents="enforce")
async def test_enforce_holds_on_websockets_too(app, live, factory):
    owner = await factory.user()
    await _trust(app, LISTED)
    client = await GraphQLWS.connect(f"ws://{live}/graphql", TRANSPORT_WS, token=owner.token)
    try:
        await client.subscribe("subscription { boardEvents(projectId: \"UHJvamVjdDox\") { seq } }")
        error = (await client.next_data())["errors"][0]
        assert error["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
        await client.subscribe(LISTED)
        assert (await client.next_data())["data"]["viewer"]["user"]["id"] == owner.gid
    finally:
        await client.close()


@pytest.mark.settings(trusted_documents="log")
async def test_log_mode_runs_everything_and_logs_the_unlisted_once(gql, factory, caplog):
    owner = await factory.user()
    with caplog.at_level(logging.WARNING, logger="pcg.documents"):
        for _ in range(3):
            assert (await gql.ok("query Stranger { viewer { user { id } } }", token=owner.token))
    lines = [r for r in caplog.records if r.name == "pcg.documents"]
    assert len(lines) == 1 and "untrusted document" in lines[0].getMessage()


def test_pcg_documents_adds_lists_and_removes(tmp_path):
    env = subprocess_env(tmp_path / "data")
    good = tmp_path / "me.graphql"
    good.write_text(LISTED)
    bad = tmp_path / "bad.graphql"
    bad.write_text("query { nope }")

    def pcg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PCG, "documents", *args], env=env, capture_output=True, text=True, timeout=60)

    digest = hashlib.sha256(LISTED.encode()).hexdigest()
    added = pcg("add", str(good))
    assert added.returncode == 0 and f"{digest}  {good}" in added.stdout, added.stderr
    assert "already trusted" in pcg("add", str(good)).stdout
    refused = pcg("add", str(bad))
    assert refused.returncode == 1 and "not a valid document" in refused.stderr
    listed = pcg("list")
    assert f"{digest}  Me" in listed.stdout
    assert pcg("remove", digest).returncode == 0
    assert digest not in pcg("list").stdout
