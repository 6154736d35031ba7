"""The audit log read through the API: `Organization.auditEntries`, `node(id)`, the CSV
export over HTTP and `pcg audit export`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from models import ApiKey, AuditEntry, OrgRole
from resolvers.identity.auth import new_api_key
from tests.conftest import gid
from tests.querycount import count_statements

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

ENTRIES = """
query($slug: String!, $filter: AuditEntryFilter, $first: Int, $after: String, $last: Int,
      $before: String, $order: AuditEntryOrder) {
  organization(slug: $slug) {
    auditEntries(filter: $filter, first: $first, after: $after, last: $last, before: $before,
                 orderBy: $order) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      nodes { id action resourceType resourceId ip requestId before after createdAt
              actor { id } apiKey { id } }
    }
  }
}"""


async def _entry(org, at: datetime, **fields) -> AuditEntry:
    values = {"action": "task.update", "resource_type": "Task", "resource_id": "1", **fields}
    entry = await AuditEntry.create(organization=org, **values)
    # created_at is auto_now_add: set the instant the test needs afterwards.
    await AuditEntry.filter(id=entry.id).update(created_at=at)
    entry.created_at = at
    return entry


async def _key(org, creator) -> ApiKey:
    _, prefix, key_hash = new_api_key()
    return await ApiKey.create(organization=org, created_by=creator.user, name="bot",
                               prefix=prefix, key_hash=key_hash, role=OrgRole.ADMIN)


def _ids(data) -> list[str]:
    return [n["id"] for n in data["organization"]["auditEntries"]["nodes"]]


def _egid(entry: AuditEntry) -> str:
    return gid("AuditEntry", entry.id)


@pytest.fixture
async def log(acme, factory):
    """acme's log of six entries at distinct instants (one of another org in between)."""
    org, owner, admin, member = acme
    bob = await factory.user("Bob")
    other = await factory.org(bob, "other")
    key = await _key(org, admin)
    e = [
        await _entry(org, T0, actor=owner.user, action="project.create", resource_type="Project",
                     resource_id="7", ip="198.51.100.1", after={"name": "Roadmap"}),
        await _entry(org, T0 + timedelta(hours=1), actor=admin.user, api_key=key,
                     resource_id="42", ip="198.51.100.2", before={"title": "a"},
                     after={"title": "b"}, request_id="req-2"),
        await _entry(org, T0 + timedelta(hours=2), actor=owner.user, resource_id="42",
                     ip="198.51.100.1"),
        await _entry(org, T0 + timedelta(hours=3), actor=member.user, action="comment.create",
                     resource_type="Comment", resource_id="9", ip="198.51.100.3"),
        await _entry(org, T0 + timedelta(hours=4), action="member.remove",
                     resource_type="OrganizationMember", resource_id="3"),
        await _entry(org, T0 + timedelta(hours=5), actor=owner.user, action="api_key.revoke",
                     resource_type="ApiKey", resource_id=str(key.id), ip="198.51.100.1"),
    ]
    foreign = await _entry(other, T0 + timedelta(minutes=30), actor=bob.user)
    return {"org": org, "owner": owner, "admin": admin, "member": member, "bob": bob,
            "entries": e, "foreign": foreign, "key": key}


# -- roles ----------------------------------------------------------------------------------------


async def test_owner_and_admin_read_a_real_write_members_are_forbidden(gql, acme, factory):
    org, owner, admin, member = acme
    created = await gql.ok(
        'mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }',
        {"i": {"organizationId": gid("Organization", org.id), "name": "Audited"}}, owner.token,
    )
    project_id = created["createProject"]["project"]["id"]
    for viewer in (owner, admin):
        data = await gql.ok(ENTRIES, {"slug": "acme"}, viewer.token)
        entries = data["organization"]["auditEntries"]
        assert entries["totalCount"] == 1
        entry = entries["nodes"][0]
        assert (entry["action"], entry["resourceType"]) == ("project.create", "Project")
        assert gid("Project", int(entry["resourceId"])) == project_id
        assert entry["actor"] == {"id": owner.gid}
        assert entry["apiKey"] is None
        assert entry["ip"] == "203.0.113.7"  # the test client's address
        assert entry["requestId"] and entry["before"] is None
        assert entry["after"]["name"] == "Audited"
    error = await gql.error(ENTRIES, {"slug": "acme"}, member.token)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["requiredRole"] == "admin"
    assert error["path"] == ["organization", "auditEntries"]


async def test_another_org_answers_like_a_missing_one(gql, log):
    bob = log["bob"]
    seen = await gql.raw(ENTRIES, {"slug": "acme"}, bob.token)
    missing = await gql.raw(ENTRIES, {"slug": "never-was"}, bob.token)
    assert seen == missing and seen["data"] == {"organization": None}
    # Bob's own log holds only his org's entry.
    data = await gql.ok(ENTRIES, {"slug": "other"}, bob.token)
    assert _ids(data) == [_egid(log["foreign"])]


async def test_an_api_key_reads_the_log_only_at_admin_role(gql, log):
    from tests.membership_helpers import make_key

    org, owner = log["org"], log["owner"]
    _, admin_key = await make_key(org, owner, OrgRole.ADMIN)
    _, member_key = await make_key(org, owner, OrgRole.MEMBER)
    data = await gql.ok(ENTRIES, {"slug": "acme", "first": 1}, admin_key)
    assert data["organization"]["auditEntries"]["totalCount"] == 6
    error = await gql.error(ENTRIES, {"slug": "acme"}, member_key)
    assert error["extensions"]["code"] == "FORBIDDEN"


# -- filters, order, pagination ----------------------------------------------------------------


@pytest.mark.both_databases
async def test_each_filter_narrows_the_log(gql, log):
    e, owner, admin = log["entries"], log["owner"], log["admin"]
    cases = [
        ({"actor": owner.gid}, [e[5], e[2], e[0]]),
        ({"actor": admin.gid}, [e[1]]),
        ({"action": "task.update"}, [e[2], e[1]]),
        ({"resourceType": "Comment"}, [e[3]]),
        ({"resourceId": "42"}, [e[2], e[1]]),
        ({"ip": "198.51.100.1"}, [e[5], e[2], e[0]]),
        ({"from": (T0 + timedelta(hours=2)).isoformat()}, [e[5], e[4], e[3], e[2]]),
        ({"to": (T0 + timedelta(hours=2)).isoformat()}, [e[1], e[0]]),
        ({"from": (T0 + timedelta(hours=1)).isoformat(),
          "to": (T0 + timedelta(hours=3)).isoformat(), "actor": owner.gid}, [e[2]]),
        ({"action": "task.update", "ip": "198.51.100.2", "resourceType": "Task"}, [e[1]]),
        ({"action": "nothing.ever"}, []),
    ]
    for flt, expected in cases:
        data = await gql.ok(ENTRIES, {"slug": "acme", "filter": flt}, owner.token)
        assert _ids(data) == [_egid(x) for x in expected], flt
        assert data["organization"]["auditEntries"]["totalCount"] == len(expected), flt


async def test_entry_fields_and_the_visible_api_key(gql, log):
    data = await gql.ok(ENTRIES, {"slug": "acme", "filter": {"actor": log["admin"].gid}},
                        log["owner"].token)
    [entry] = data["organization"]["auditEntries"]["nodes"]
    assert entry["apiKey"] == {"id": gid("ApiKey", log["key"].id)}
    assert (entry["before"], entry["after"]) == ({"title": "a"}, {"title": "b"})
    assert (entry["requestId"], entry["ip"]) == ("req-2", "198.51.100.2")
    assert datetime.fromisoformat(entry["createdAt"]) == T0 + timedelta(hours=1)


async def test_bad_filter_values_are_bad_user_input(gql, log):
    token = log["owner"].token
    for flt, field in [
        ({"actor": gid("Task", 1)}, "actor"),
        ({"actor": "not-an-id"}, None),
        ({"action": "x" * 65}, "action"),
        ({"ip": "a\x00b"}, "ip"),
    ]:
        error = await gql.error(ENTRIES, {"slug": "acme", "filter": flt}, token)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", flt
        if field:
            assert error["extensions"]["field"] == field


@pytest.mark.both_databases
async def test_pages_newest_first_then_back_and_oldest_first(gql, log):
    e, token = log["entries"], log["owner"].token
    # Two entries at the same instant: id breaks the tie in the order's direction.
    tie = await _entry(log["org"], T0 + timedelta(hours=5), action="tie")
    newest_first = [tie, e[5], e[4], e[3], e[2], e[1], e[0]]
    seen, after = [], None
    while True:
        data = await gql.ok(ENTRIES, {"slug": "acme", "first": 3, "after": after}, token)
        page = data["organization"]["auditEntries"]
        seen += [n["id"] for n in page["nodes"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [_egid(x) for x in newest_first]
    data = await gql.ok(ENTRIES, {"slug": "acme", "last": 2, "before": after}, token)
    assert _ids(data) == [_egid(e[3]), _egid(e[2])]
    data = await gql.ok(ENTRIES, {"slug": "acme", "first": 3, "order": "CREATED_AT_ASC"}, token)
    assert _ids(data) == [_egid(e[0]), _egid(e[1]), _egid(e[2])]
    error = await gql.error(ENTRIES, {"slug": "acme", "after": "garbage!"}, token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


# -- node(id) -----------------------------------------------------------------------------------

NODE = "query($id: ID!) { node(id: $id) { id __typename ... on AuditEntry { action } } }"


@pytest.mark.both_databases
async def test_node_resolves_for_admins_only_and_hides_other_orgs(gql, log):
    entry, foreign = log["entries"][1], log["foreign"]
    for viewer in (log["owner"], log["admin"]):
        data = await gql.ok(NODE, {"id": _egid(entry)}, viewer.token)
        assert data["node"] == {"id": _egid(entry), "__typename": "AuditEntry",
                                "action": "task.update"}
    missing = gid("AuditEntry", 987_654)
    for viewer, gid_ in [(log["member"], _egid(entry)), (log["bob"], _egid(entry)),
                         (log["owner"], _egid(foreign))]:
        seen = await gql.raw(NODE, {"id": gid_}, viewer.token)
        assert seen == await gql.raw(NODE, {"id": missing}, viewer.token)
        assert seen["data"] == {"node": None}


# -- statements ---------------------------------------------------------------------------------

COUNTED = """query { organization(slug: "acme") { auditEntries(first: 100) {
  totalCount nodes { id actor { id name } apiKey { id name } } } } }"""


@pytest.mark.both_databases
async def test_statements_do_not_grow_with_the_page(gql, acme, factory):
    """auth, memberships, organization, page, users, api keys, total: 7, for 3 or 90 entries
    with as many distinct actors and keys."""
    org, owner, _, _ = acme
    counts = []
    for n in (3, 90):
        people = []
        for _ in range(n - len(people)):
            person = await factory.user()
            await factory.org_member(org, person, OrgRole.ADMIN)
            people.append(person)
        keys = [await _key(org, p) for p in people]
        await AuditEntry.bulk_create([
            AuditEntry(organization=org, actor=p.user, api_key=k, action="task.update",
                       resource_type="Task", resource_id=str(i))
            for i, (p, k) in enumerate(zip(people, keys))
        ])
        with count_statements() as log:
            data = await gql.ok(COUNTED, token=owner.token)
        nodes = data["organization"]["auditEntries"]["nodes"]
        assert len(nodes) == n
        assert all(node["actor"] and node["apiKey"] for node in nodes)
        counts.append(log.count)
        await AuditEntry.all().delete()
    assert counts == [7, 7], counts


# -- CSV over HTTP ------------------------------------------------------------------------------


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.both_databases
async def test_csv_export_with_filters_is_audited(client, log):
    owner = log["owner"]
    headers = {"Authorization": f"Bearer {owner.token}"}
    response = await client.get("/api/orgs/acme/audit.csv",
                                params={"action": "task.update"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-acme.csv"' in response.headers["content-disposition"]
    rows = _rows(response.text)
    e = log["entries"]
    assert [r["id"] for r in rows] == [_egid(e[2]), _egid(e[1])]
    row = rows[1]
    assert row["actor"] == log["admin"].gid
    assert row["actorEmail"] == log["admin"].user.email
    assert row["apiKey"] == gid("ApiKey", log["key"].id)
    assert (row["before"], row["after"]) == ('{"title":"a"}', '{"title":"b"}')
    assert datetime.fromisoformat(row["createdAt"]) == T0 + timedelta(hours=1)

    response = await client.get("/api/orgs/acme/audit.csv", headers=headers, params={
        "from": (T0 + timedelta(hours=3)).isoformat(), "to": (T0 + timedelta(hours=5)).isoformat(),
    })
    assert [r["id"] for r in _rows(response.text)] == [_egid(e[4]), _egid(e[3])]

    # Each export left one entry naming its filter, actor and address.
    exports = await AuditEntry.filter(action="audit.export").order_by("id")
    assert len(exports) == 2
    assert exports[0].actor_id == owner.user.id and exports[0].ip == "203.0.113.7"
    assert exports[0].after == {"filter": {"action": "task.update"}}
    assert (exports[0].resource_type, exports[0].resource_id) == ("Organization", str(log["org"].id))
    # ...and the next export (no filter) lists them, newest first.
    response = await client.get("/api/orgs/acme/audit.csv", headers=headers)
    actions = [r["action"] for r in _rows(response.text)]
    assert actions[:3] == ["audit.export"] * 3 and len(actions) == 6 + 3


def _without_request_id(extensions: dict) -> dict:
    return {k: v for k, v in extensions.items() if k != "requestId"}


async def test_csv_refusals_are_json_errors(client, log):
    async def get(token: str | None, slug: str = "acme", **params):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.get(f"/api/orgs/{slug}/audit.csv", params=params, headers=headers)
        body = response.json()
        return response.status_code, body["errors"][0]["extensions"]

    status, ext = await get(log["member"].token)
    assert (status, ext["code"], ext["requiredRole"]) == (403, "FORBIDDEN", "admin")
    foreign = await get(log["bob"].token)
    assert foreign[0] == 404 and foreign[1]["code"] == "NOT_FOUND"
    # Another org's log answers exactly like a slug nobody has (request ids aside).
    missing = await get(log["bob"].token, "never-was")
    assert (foreign[0], _without_request_id(foreign[1])) == (
        missing[0], _without_request_id(missing[1]))
    for token in (None, "nonsense"):
        status, ext = await get(token)
        assert (status, ext["code"]) == (401, "UNAUTHENTICATED")
    status, ext = await get(log["owner"].token, **{"from": "yesterday"})
    assert (status, ext["code"], ext["field"]) == (400, "BAD_USER_INPUT", "from")
    status, ext = await get(log["owner"].token, actor=gid("Task", 1))
    assert (status, ext["code"], ext["field"]) == (400, "BAD_USER_INPUT", "actor")
    status, ext = await get(log["owner"].token, colour="red")
    assert (status, ext["code"]) == (400, "BAD_USER_INPUT")
    # Nothing was exported, so nothing was audited.
    assert await AuditEntry.filter(action="audit.export").count() == 0


@pytest.mark.both_databases
async def test_csv_export_walks_the_log_in_keyset_batches(client, acme):
    """2,500 entries leave in three batches of at most 1,000 (one entry statement and one
    actor statement each), newest first, none lost or repeated at batch edges."""
    org, owner, admin, _ = acme
    stamp = T0
    await AuditEntry.bulk_create([
        AuditEntry(organization=org, actor=(owner if i % 2 else admin).user, action="task.update",
                   resource_type="Task", resource_id=str(i), created_at=stamp)
        for i in range(2_499)
    ])
    # The export's own entry makes 2,500.
    with count_statements() as statements:
        response = await client.get("/api/orgs/acme/audit.csv",
                                    headers={"Authorization": f"Bearer {owner.token}"})
    rows = _rows(response.text)
    assert len(rows) == 2_500 and len({r["id"] for r in rows}) == 2_500
    assert rows[0]["action"] == "audit.export"
    selects = [s for s in statements.statements
               if s.lstrip().upper().startswith("SELECT") and '"audit_entry"' in s]
    assert len(selects) == 3, statements.report()
    users = [s for s in statements.statements if s.lstrip().upper().startswith("SELECT")
             and 'FROM "users"' in s]
    assert len(users) == 1 + 3  # the token's user, then one per batch
    # All 2,499 share one instant: the id tiebreak alone orders them, descending.
    pks = [int(r["resourceId"]) for r in rows[1:]]
    assert pks == sorted(pks, reverse=True)


async def test_csv_cells_that_would_run_as_formulas_are_quoted(client, acme):
    org, owner, _, _ = acme
    await _entry(org, T0, action="=HYPERLINK(1)", resource_id="-1")
    response = await client.get("/api/orgs/acme/audit.csv",
                                headers={"Authorization": f"Bearer {owner.token}"},
                                params={"resourceId": "-1"})
    [row] = _rows(response.text)
    assert (row["action"], row["resourceId"]) == ("'=HYPERLINK(1)", "'-1")


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_audit_export_writes_csv_and_is_audited(monkeypatch, tmp_path, capsys):
    import os

    from server.cli import main

    for name in list(os.environ):
        if name.startswith("PCG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PCG_DATA_DIR", str(tmp_path / "data"))
    assert main(["seed", "--demo"]) == 0
    assert main(["create-api-key", "--org", "demo", "--name", "CI bot"]) == 0
    capsys.readouterr()

    assert main(["audit", "export", "--org", "demo", "--action", "api_key.create"]) == 0
    out = capsys.readouterr()
    [row] = _rows(out.out)
    assert (row["action"], row["resourceType"], row["actorEmail"]) == (
        "api_key.create", "ApiKey", "ada@demo.pcg")
    assert "exported 1 audit entries" in out.err

    assert main(["audit", "export", "--org", "demo", "--actor", "ada@demo.pcg",
                 "--from", "2000-01-01T00:00:00+00:00", "--to", "2999-01-01T00:00:00+00:00"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows and {r["actorEmail"] for r in rows} == {"ada@demo.pcg"}
    assert main(["audit", "export", "--org", "demo", "--action", "audit.export"]) == 0
    exports = _rows(capsys.readouterr().out)
    # Three exports so far (this one included), by no user, from no address.
    assert len(exports) == 3 and {(r["actor"], r["ip"]) for r in exports} == {("", "")}
    assert exports[-1]["after"] == '{"filter":{"action":"api_key.create"}}'

    assert main(["audit", "export", "--org", "nope"]) == 1
    assert "no organization with slug 'nope'" in capsys.readouterr().err
    assert main(["audit", "export", "--org", "demo", "--from", "soon"]) == 1
    assert "`from` must be an RFC 3339" in capsys.readouterr().err
    assert main(["audit", "export", "--org", "demo", "--actor", "nobody@x.test"]) == 1
    assert "no user with email" in capsys.readouterr().err
    # Refused exports were not recorded.
    assert main(["audit", "export", "--org", "demo", "--action", "audit.export"]) == 0
    assert len(_rows(capsys.readouterr().out)) == 4
