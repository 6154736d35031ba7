"""Who may call a field: declared once, where the field is defined.

    @mutation(requires=project(Permission.WRITE_TASKS), description="Create a task ...")

The declaration writes the field's "who may" sentence into its description (so the schema's
documentation cannot drift from it) and rides on the field's metadata, where the role matrix
(tests/test_role_matrix.py) reads it: every declared least role is proven to pass and the
role below it to get FORBIDDEN. The check itself runs in resolvers/ through the access layer,
on the object the call names (a field cannot know the project before its input is read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import strawberry

from models import OrgRole, ProjectRole
from resolvers.access import OrgPermission, Permission

__all__ = ["ANYONE", "SIGNED_IN", "OrgPermission", "Permission", "Requires", "declared", "field", "in_org", "in_project", "mutation", "own"]

# Organization owners act as owners, and admins as admins, of every project of their org.
_PROJECT_WHO = {
    ProjectRole.VIEWER: "Anyone who can see the project",
    ProjectRole.EDITOR: "Project editors and up (organization owners and admins included)",
    ProjectRole.ADMIN: "Project admins and owners (organization owners and admins included)",
    ProjectRole.OWNER: "Project owners (organization owners included)",
}
_ORG_WHO = {
    OrgRole.MEMBER: "Organization members",
    OrgRole.ADMIN: "Organization admins and owners",
    OrgRole.OWNER: "Organization owners",
}


@dataclass(frozen=True)
class Requires:
    """What a caller must hold: a project right, an organization right, or one of the rules
    that name no role (anyone; any signed-in person; the person the object belongs to)."""

    right: Permission | OrgPermission | None
    who: str
    # A further rule the field enforces, said after the role (e.g. who may touch owners).
    also: str | None = None
    api_keys: bool = True  # False: an API key is refused whatever its role

    @property
    def least_role(self) -> ProjectRole | OrgRole | None:
        return self.right.role if self.right is not None else None

    def sentence(self) -> str:
        text = self.who
        if self.also:
            text += f"; {self.also}"
        if not self.api_keys:
            text += "; not with an API key"
        return text + "."

    def with_(self, *, also: str | None = None, api_keys: bool | None = None) -> Requires:
        return Requires(
            self.right, self.who, also if also is not None else self.also,
            self.api_keys if api_keys is None else api_keys,
        )


def in_project(right: Permission, *, also: str | None = None) -> Requires:
    return Requires(right, _PROJECT_WHO[right.role], also)


def in_org(right: OrgPermission, *, also: str | None = None, api_keys: bool = True) -> Requires:
    return Requires(right, _ORG_WHO[right.role], also, api_keys)


ANYONE = Requires(None, "Anyone, without a credential")
SIGNED_IN = Requires(None, "Any signed-in person")


def own(what: str) -> Requires:
    """Only the person `what` belongs to, whatever their role."""
    return Requires(None, f"Only the person whose {what} it is")


def _described(requires: Requires, description: str) -> dict[str, Any]:
    return {"description": f"{description} {requires.sentence()}", "metadata": {"requires": requires}}


def mutation(*, requires: Requires, description: str, **kwargs: Any) -> Callable[..., Any]:
    return strawberry.mutation(**_described(requires, description), **kwargs)


def field(*, requires: Requires, description: str, **kwargs: Any) -> Any:
    return strawberry.field(**_described(requires, description), **kwargs)


def declared(strawberry_field: Any) -> Requires | None:
    """The requirement a field was declared with, if any."""
    return (strawberry_field.metadata or {}).get("requires")
