"""Tortoise models, one module a domain (identity, org, project, task, event, audit, nora,
document, email). No GraphQL and no business rules live here."""

from models.audit import AuditAction, AuditEntry
from models.document import TrustedDocument
from models.email import EmailToken, EmailTokenPurpose, OutboxEmail, OutboxStatus
from models.event import BoardEvent, BoardEventType
from models.identity import ApiKey, User
from models.nora import (
    NoraConversation,
    NoraEvent,
    NoraEventType,
    NoraMessage,
    NoraMessageStatus,
    NoraRole,
    NoraUsageEntry,
    UsageKind,
)
from models.org import Invite, Organization, OrganizationMember, OrgRole, Plan
from models.project import CustomFieldDefinition, CustomFieldType, Label, Project, ProjectMember, ProjectRole
from models.task import PRIORITY_RANK, Comment, Task, TaskLabel, TaskPriority, TaskStatus

MODEL_MODULES = [
    "models.identity",
    "models.org",
    "models.project",
    "models.task",
    "models.event",
    "models.audit",
    "models.nora",
    "models.document",
    "models.email",
]

__all__ = [
    "PRIORITY_RANK",
    "ApiKey",
    "AuditAction",
    "AuditEntry",
    "BoardEvent",
    "BoardEventType",
    "Comment",
    "EmailToken",
    "EmailTokenPurpose",
    "CustomFieldDefinition",
    "CustomFieldType",
    "Invite",
    "Label",
    "MODEL_MODULES",
    "NoraConversation",
    "NoraEvent",
    "NoraEventType",
    "NoraMessage",
    "NoraMessageStatus",
    "NoraRole",
    "NoraUsageEntry",
    "OrgRole",
    "OutboxEmail",
    "OutboxStatus",
    "Organization",
    "OrganizationMember",
    "Plan",
    "Project",
    "ProjectMember",
    "ProjectRole",
    "Task",
    "TaskLabel",
    "TaskPriority",
    "TaskStatus",
    "TrustedDocument",
    "UsageKind",
    "User",
]
