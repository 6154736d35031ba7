"""Test harness: a database built by the committed Aerich migrations, the real ASGI app
(lifespan included) over HTTP, and helpers to create data and call GraphQL."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from models import (
    Organization,
    OrganizationMember,
    OrgRole,
    Plan,
    Project,
    ProjectMember,
    ProjectRole,
    User,
)
from resolvers.identity.auth import hash_password
from resolvers.identity.sessions import issue_outside_request
from resolvers.ids import to_global_id
from schema.limits import Limits
from server.app import create_app
from server.db import migrate
from server.settings import Settings

SECRET = "test-secret-key-" + "x" * 40
PG_ADMIN_URL = os.environ.get("PCG_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One SQLite file built by `pcg migrate`'s code path; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "pcg.db"
    settings = Settings(database_url=f"sqlite://{path}", env="test", secret_key=SECRET)
    _forget_compiled_queries()
    applied = asyncio.run(migrate(settings))
    assert applied, "no migration was applied to the template database"
    # Fold the WAL back into the main file so a plain copy is complete.
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


def pytest_configure(config):
    from tests import execution_corpus

    execution_corpus.install()


def pytest_collection_modifyitems(config, items):
    """The differential test replays what the rest of the run executed: it goes last. Soak
    tests run only with PCG_SOAK=1."""
    last = [i for i in items if i.module.__name__.endswith("test_execution_differential")]
    items[:] = [i for i in items if i not in last] + last
    if os.environ.get("PCG_SOAK") != "1":
        skip = pytest.mark.skip(reason="a soak run: PCG_SOAK=1")
        for item in items:
            if item.get_closest_marker("soak"):
                item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    from tests import execution_corpus

    execution_corpus.write_if_asked()


def pytest_generate_tests(metafunc):
    """Tests marked `both_databases` run on SQLite and on PostgreSQL; the rest on SQLite."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker
        if marker("postgres_only"):
            backends = ["postgres"]
        elif marker("both_databases"):
            backends = ["sqlite", "postgres"]
        else:
            backends = ["sqlite"]
        metafunc.parametrize("backend", backends)


def _forget_compiled_queries() -> None:
    """Tortoise caches compiled INSERT/UPDATE SQL per (connection name, table), not per
    dialect; tests switch between SQLite and PostgreSQL under the same name "default"."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> str:
    """A PostgreSQL database built by the migrations; each test clones it (CREATE ... TEMPLATE).

    Skips when PostgreSQL is unreachable, except on CI where that is a failure.
    """
    name = f"pcg_template_{os.getpid()}"
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:  # noqa: BLE001 - any connection failure
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required on CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    settings = Settings(database_url=_pg_url(name), env="test", secret_key=SECRET)
    _forget_compiled_queries()
    assert asyncio.run(migrate(settings)), "no migration was applied to the PostgreSQL template"
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def database_url(request, backend, tmp_path) -> str:
    _forget_compiled_queries()
    if backend == "postgres":
        template = request.getfixturevalue("pg_template")
        name = f"pcg_t_{os.getpid()}_{next(_counter)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield _pg_url(name)
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    db = tmp_path / "pcg.db"
    shutil.copy(request.getfixturevalue("migrated_template"), db)
    yield f"sqlite://{db}"


@pytest.fixture
def settings(request, tmp_path, database_url) -> Settings:
    """`@pytest.mark.limits(max_cost=...)` runs a test with other request limits,
    `@pytest.mark.settings(cors_origins=...)` with other settings."""
    marker = request.node.get_closest_marker("limits")
    limits = Limits(**marker.kwargs) if marker else Limits()
    overrides = request.node.get_closest_marker("settings")
    # Budgets no ordinary test reaches; tests/test_rate_limits.py sets its own.
    budgets = {"rate_limit_free": 100_000, "rate_limit_pro": 100_000,
               "rate_limit_enterprise": 100_000, "rate_limit_anonymous": 100_000}
    fields = {"env": "test", "data_dir": tmp_path, "database_url": database_url,
              "secret_key": SECRET, "limits": limits, **budgets,
              # Queued emails stay in the outbox, so that a test's database snapshot is not
              # changed under it by a delivery; tests/test_email_*.py run the worker.
              "outbox_worker": False,
              **(overrides.kwargs if overrides else {})}
    return Settings(**fields)


@pytest.fixture
async def app(settings):
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(self, query: str, variables: dict | None = None, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = await self.raw(query, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error(
        self, query: str, variables: dict | None = None, token: str | None = None
    ) -> dict:
        """Exactly one error expected; returns it (message, extensions, path)."""
        body = await self.raw(query, variables, token)
        assert body.get("errors"), f"expected an error, got {body}"
        assert len(body["errors"]) == 1, body["errors"]
        return body["errors"][0]

    async def code(self, query: str, variables: dict | None = None, token: str | None = None) -> str:
        return (await self.error(query, variables, token))["extensions"]["code"]


@pytest.fixture
def gql(client) -> GraphQLClient:
    return GraphQLClient(client)


@dataclass
class Actor:
    user: User
    token: str
    # The session the token belongs to, and its refresh token.
    session_id: int | None = None
    refresh_token: str | None = None

    @property
    def gid(self) -> str:
        return to_global_id("User", self.user.id)


class Factory:
    """Direct model writes for arranging a test; the behaviour under test goes over HTTP."""

    def __init__(self, password_hash: str) -> None:
        self.password_hash = password_hash

    async def user(self, name: str | None = None, *, verified: bool = True) -> Actor:
        n = next(_counter)
        name = name or f"user{n}"
        user = await User.create(
            email=f"{name.lower()}.{n}@example.test", name=name, password_hash=self.password_hash,
            email_verified_at=datetime.now(UTC) if verified else None,
        )
        issued = await issue_outside_request(user, SECRET, 3600)
        return Actor(user, issued.access_token, issued.session.id, issued.refresh_token)

    async def org(
        self, owner: Actor, slug: str | None = None, plan: Plan = Plan.ENTERPRISE
    ) -> Organization:
        slug = slug or f"org-{next(_counter)}"
        # Enterprise (no plan limits): many tests hold more members or projects in one org
        # than the free plan allows. Orgs made through createOrganization start free, and
        # tests/test_org_plan_limits.py sets the plan it tests.
        org = await Organization.create(slug=slug, name=slug.title(), plan=plan)
        await OrganizationMember.create(organization=org, user=owner.user, role=OrgRole.OWNER)
        return org

    async def org_member(self, org: Organization, actor: Actor, role: OrgRole) -> None:
        await OrganizationMember.create(organization=org, user=actor.user, role=role)

    async def project(self, org: Organization, owner: Actor, name: str = "Project") -> Project:
        project = await Project.create(organization=org, name=name, created_by=owner.user)
        await ProjectMember.create(project=project, user=owner.user, role=ProjectRole.OWNER)
        return project

    async def project_member(self, project: Project, actor: Actor, role: ProjectRole) -> None:
        await ProjectMember.create(project=project, user=actor.user, role=role)


@pytest.fixture
def factory(app, password_hash) -> Factory:
    return Factory(password_hash)


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


@pytest.fixture
async def live(app):
    """The same app served by a real uvicorn on 127.0.0.1 (the lifespan already runs)."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server for the test (skipped without one, except on CI)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required on CI")
        pytest.skip("redis-server is not installed")
    from tests.processes import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def acme(factory):
    """Organization "acme" with an owner, an admin and a member: (org, owner, admin, member)."""
    owner = await factory.user("Owner")
    admin = await factory.user("Admin")
    member = await factory.user("Member")
    org = await factory.org(owner, "acme")
    await factory.org_member(org, admin, OrgRole.ADMIN)
    await factory.org_member(org, member, OrgRole.MEMBER)
    return org, owner, admin, member
