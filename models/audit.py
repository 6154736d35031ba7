"""The audit domain: one entry per write, and the catalogue of what a write can be."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import ApiKey, User
    from models.org import Organization


class AuditAction(str, Enum):
    """Every action an audit entry can record, with the type of the resource it names.

    The value is what the API shows (`AuditEntry.action`, the CSV export, filters); it is
    stored as text, so an entry written by a newer release still reads."""

    resource_type: str

    def __new__(cls, value: str, resource_type: str) -> AuditAction:
        member = str.__new__(cls, value)
        member._value_ = value
        member.resource_type = resource_type
        return member

    USER_SIGN_UP = ("user.sign_up", "User")
    # Email flows (resolvers/identity/verification.py, password_reset.py): user-level entries,
    # organization NULL. `sign_up_existing`: someone signed up with the email of this account
    # (the account was sent a notice, the caller learnt nothing).
    USER_SIGN_UP_EXISTING = ("user.sign_up_existing", "User")
    USER_VERIFY_EMAIL = ("user.verify_email", "User")
    USER_RESEND_VERIFICATION = ("user.resend_verification", "User")
    USER_PASSWORD_RESET_REQUEST = ("user.password_reset_request", "User")
    USER_PASSWORD_RESET = ("user.password_reset", "User")
    ORGANIZATION_CREATE = ("organization.create", "Organization")
    ORGANIZATION_SET_PLAN = ("organization.set_plan", "Organization")
    MEMBER_UPDATE_ROLE = ("member.update_role", "OrganizationMember")
    MEMBER_REMOVE = ("member.remove", "OrganizationMember")
    INVITE_CREATE = ("invite.create", "Invite")
    INVITE_ACCEPT = ("invite.accept", "Invite")
    INVITE_REVOKE = ("invite.revoke", "Invite")
    API_KEY_CREATE = ("api_key.create", "ApiKey")
    API_KEY_REVOKE = ("api_key.revoke", "ApiKey")
    PROJECT_CREATE = ("project.create", "Project")
    PROJECT_UPDATE = ("project.update", "Project")
    PROJECT_ARCHIVE = ("project.archive", "Project")
    PROJECT_MEMBER_ADD = ("project_member.add", "ProjectMember")
    PROJECT_MEMBER_UPDATE_ROLE = ("project_member.update_role", "ProjectMember")
    PROJECT_MEMBER_REMOVE = ("project_member.remove", "ProjectMember")
    LABEL_CREATE = ("label.create", "Label")
    CUSTOM_FIELD_CREATE = ("custom_field.create", "CustomFieldDefinition")
    TASK_CREATE = ("task.create", "Task")
    TASK_UPDATE = ("task.update", "Task")
    TASK_MOVE = ("task.move", "Task")
    TASK_ARCHIVE = ("task.archive", "Task")
    TASK_UNARCHIVE = ("task.unarchive", "Task")
    TASK_DELETE = ("task.delete", "Task")
    COMMENT_CREATE = ("comment.create", "Comment")
    AUDIT_EXPORT = ("audit.export", "Organization")
    NORA_CONVERSATION_START = ("nora.conversation.start", "NoraConversation")
    NORA_MESSAGE_SEND = ("nora.message.send", "NoraMessage")
    NORA_MESSAGE_CANCEL = ("nora.message.cancel", "NoraMessage")
    # Identity: the account's own log (organization_id NULL, actor the account's user, read
    # by them as viewer.securityLog), but for what an organization's owners do to a member.
    USER_LOG_IN = ("user.log_in", "Session")
    USER_LOG_IN_FAILED = ("user.log_in_failed", "User")
    USER_LOG_OUT = ("user.log_out", "Session")
    USER_LOG_OUT_EVERYWHERE = ("user.log_out_everywhere", "User")
    SESSION_REFRESH = ("session.refresh", "Session")
    SESSION_REFRESH_TOKEN_REUSE = ("session.refresh_token_reuse", "Session")
    SESSION_REVOKE = ("session.revoke", "Session")
    MEMBER_END_SESSIONS = ("member.end_sessions", "OrganizationMember")
    ORGANIZATION_UPDATE_SESSION_POLICY = ("organization.update_session_policy", "Organization")
    API_KEY_WRITE_REFUSED = ("api_key.write_refused", "ApiKey")


# The longest User-Agent kept (audit entries and sessions, resolvers/context.py user_agent_of).
USER_AGENT_MAX = 512


class AuditEntry(Model):
    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyNullableRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="audit", null=True
    )
    organization_id: int | None
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="audit_entries", null=True
    )
    actor_id: int | None
    api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="audit_entries", null=True
    )
    api_key_id: int | None
    # An AuditAction's value.
    action = fields.CharField(max_length=64)
    resource_type = fields.CharField(max_length=64)
    resource_id = fields.CharField(max_length=64)
    before: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    after: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    ip = fields.CharField(max_length=64, null=True)
    request_id = fields.CharField(max_length=64, null=True)
    # The client's User-Agent header (HTTP request or websocket handshake), cut to fit.
    user_agent = fields.CharField(max_length=USER_AGENT_MAX, null=True)
    # Position in the organization's log, dense from 1 (Organization.audit_seq); null for
    # entries of no organization (an account's own: sign-ups, logins, sessions), which no
    # live stream carries.
    seq: fields.Field[int | None] = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_entry"
        # The audit log is read newest first within one organization, with id breaking ties:
        # this index serves the page (and the CSV export's keyset walk) without a sort. The
        # second serves an account's own log (viewer.securityLog) the same way.
        indexes = (("organization", "created_at", "id"), ("actor", "created_at", "id"))
        # The live stream's replay (seq > cursor, in order) and its oldest-kept probe.
        unique_together = (("organization", "seq"),)
