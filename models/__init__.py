"""Tortoise models. No GraphQL and no business rules live here."""

from models.audit import AuditEntry
from models.documents import TrustedDocument
from models.enums import (
    CustomFieldType,
    OrgRole,
    Plan,
    ProjectRole,
    TaskPriority,
    TaskStatus,
)
from models.events import BoardEvent
from models.identity import ApiKey, User
from models.nora import (
    Conversation,
    Message,
    MessageStatus,
    NoraEvent,
    NoraRole,
    UsageKind,
    UsageLedger,
)
from models.org import Invite, Organization, OrganizationMember
from models.project import CustomFieldDefinition, Label, Project, ProjectMember
from models.task import Task, TaskComment, TaskLabel

MODEL_MODULES = [
    "models.identity",
    "models.org",
    "models.project",
    "models.task",
    "models.events",
    "models.audit",
    "models.nora",
    "models.documents",
]

__all__ = [
    "TrustedDocument",
    "ApiKey",
    "AuditEntry",
    "BoardEvent",
    "Conversation",
    "CustomFieldDefinition",
    "CustomFieldType",
    "Invite",
    "Label",
    "MODEL_MODULES",
    "Message",
    "MessageStatus",
    "NoraEvent",
    "NoraRole",
    "OrgRole",
    "Organization",
    "OrganizationMember",
    "Plan",
    "Project",
    "ProjectMember",
    "ProjectRole",
    "Task",
    "TaskComment",
    "TaskLabel",
    "TaskPriority",
    "TaskStatus",
    "UsageKind",
    "UsageLedger",
    "User",
]
