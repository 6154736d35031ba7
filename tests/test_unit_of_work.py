"""The one write pipeline (resolvers/unit_of_work.py): its rules hold in code, not only in
its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models import AuditAction, AuditEntry, User
from resolvers.access import Access
from resolvers.context import Context
from resolvers.loaders import LoaderInWrite
from resolvers.unit_of_work import unit_of_work, writing

ROOT = Path(__file__).resolve().parent.parent


async def test_a_loader_used_inside_a_write_is_refused_and_nothing_commits(app, settings, factory):
    someone = await factory.user("Someone")
    ctx = Context(settings=settings, access=Access(None), broadcast=None)
    with pytest.raises(LoaderInWrite):
        async with unit_of_work(ctx) as work:
            assert writing()
            user = await User.create(email="inside@example.test", name="Inside", password_hash="x")
            await work.audit(AuditAction.USER_SIGN_UP, user.id, organization_id=None)
            ctx.loaders.user.load(someone.user.id)  # would deadlock on SQLite if awaited
    assert not writing()
    assert not await User.filter(email="inside@example.test").exists()
    assert not await AuditEntry.exists()
    # After the write, the same loaders serve again.
    assert (await ctx.loaders.user.load(someone.user.id)).id == someone.user.id


async def test_the_audit_entry_takes_its_resource_type_from_the_action(app, settings):
    ctx = Context(settings=settings, access=Access(None), broadcast=None, ip="198.51.100.4")
    async with unit_of_work(ctx) as work:
        entry = await work.audit(AuditAction.TASK_ARCHIVE, 7, organization_id=None, after={"a": 1})
    stored = await AuditEntry.get(id=entry.id)
    assert (stored.action, stored.resource_type, stored.resource_id) == ("task.archive", "Task", "7")
    assert (stored.ip, stored.request_id) == ("198.51.100.4", ctx.request_id)


def test_every_action_names_a_resource_type_and_a_unique_value():
    values = [a.value for a in AuditAction]
    assert len(values) == len(set(values))
    assert all(a.resource_type[0].isupper() for a in AuditAction)


def test_only_the_unit_of_work_opens_transactions():
    """Every write of the API goes through resolvers/unit_of_work.py: no other module of the
    server opens a transaction of its own (the demo seed and migrations run outside the API)."""
    allowed = {"resolvers/unit_of_work.py", "server/demo.py", "server/db.py"}
    offenders = []
    for folder in ("resolvers", "schema", "server", "models"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Name | ast.Attribute):
                    name = node.id if isinstance(node, ast.Name) else node.attr
                    if name == "in_transaction":
                        offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
