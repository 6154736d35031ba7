import pytest

from tests.conftest import PASSWORD


async def test_health(client):
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok",
                        "checks": {"database": "ok", "migrations": "ok", "broadcast": "ok"}}
    assert r.headers["x-request-id"]


@pytest.mark.both_databases
async def test_sign_up_then_create_org_project_task_and_read_board(gql):
    data = await gql.ok(
        """mutation($i: SignUpInput!) { signUp(input: $i) { ok } }""",
        {"i": {"email": "Ada@Example.test", "name": "Ada", "password": PASSWORD}},
    )
    assert data["signUp"]["ok"] is True
    # signUp returns no token (it answers the same for a taken email): log in.
    data = await gql.ok(
        """mutation($i: LogInInput!) { logIn(input: $i) { accessToken user { id name email } } }""",
        {"i": {"email": "ada@example.test", "password": PASSWORD}},
    )
    token = data["logIn"]["accessToken"]
    assert data["logIn"]["user"]["email"] == "ada@example.test"

    org = (await gql.ok(
        """mutation { createOrganization(input: {slug: "acme", name: "Acme"}) { organization { id slug viewerRole } } }""",
        token=token,
    ))["createOrganization"]["organization"]
    assert org["viewerRole"] == "OWNER"

    project = (await gql.ok(
        """mutation($o: ID!) { createProject(input: {organizationId: $o, name: "Web"}) { project { id name viewerRole } } }""",
        {"o": org["id"]},
        token=token,
    ))["createProject"]["project"]
    assert project["viewerRole"] == "OWNER"

    for title in ["one", "two"]:
        await gql.ok(
            """mutation($p: ID!, $t: String!) { createTask(input: {projectId: $p, title: $t}) { task { id title status } } }""",
            {"p": project["id"], "t": title},
            token=token,
        )

    board = await gql.ok(
        """query($p: ID!) { project(id: $p) { board { columns { status tasks { totalCount nodes { title assignee { id } labels { id } commentCount } } } } } }""",
        {"p": project["id"]},
        token=token,
    )
    columns = board["project"]["board"]["columns"]
    assert [c["status"] for c in columns] == ["TODO", "INPROGRESS", "INREVIEW", "DONE", "CANCELLED"]
    assert [t["title"] for t in columns[0]["tasks"]["nodes"]] == ["one", "two"]
    assert columns[0]["tasks"]["totalCount"] == 2
