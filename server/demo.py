"""The demo organization behind `pcg serve --demo` and `pcg seed --demo`.

Rows are written directly with the models, in one transaction, because the demo is
fixture data rather than user actions: no board events are emitted, and a single
`demo.seed` audit entry records where the data came from. Seeding is idempotent: the
organization slug `demo` marks a seeded database, and a second run only issues a new token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fractional_indexing import generate_key_between
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import (
    AuditEntry,
    Comment,
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    Organization,
    OrganizationMember,
    OrgRole,
    Plan,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
    User,
)
from models.task import PRIORITY_RANK
from resolvers.identity.auth import hash_password
from resolvers.identity.sessions import issue_outside_request
from server.settings import Settings

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-password"
# Long enough that a demo session survives a weekend; `logIn` tokens keep the configured TTL.
DEMO_TOKEN_TTL = 7 * 24 * 3600

# email, name, org role
USERS = [
    ("ada@demo.pcg", "Ada Lovelace", OrgRole.OWNER),
    ("grace@demo.pcg", "Grace Hopper", OrgRole.ADMIN),
    ("linus@demo.pcg", "Linus Torvalds", OrgRole.MEMBER),
    ("margaret@demo.pcg", "Margaret Hamilton", OrgRole.MEMBER),
]
LABELS = [("bug", "#d73a4a"), ("feature", "#1f6feb"), ("design", "#a371f7"), ("infra", "#6e7781")]

# status, title, priority, assignee (first name), labels, due in days, custom properties
WEBSITE_TASKS = [
    ("todo", "Audit broken links on the old site", "low", "linus", ["bug"], 14, {"estimate": 2, "area": "frontend"}),
    ("todo", "Write copy for the pricing page", "medium", "grace", ["design"], 10, {"estimate": 3, "area": "content"}),
    ("todo", "Add a cookie consent banner", "high", "linus", ["feature"], 7, {"estimate": 3, "area": "frontend"}),
    ("todo", "Set up uptime monitoring", "medium", None, ["infra"], None, {"estimate": 2, "area": "ops"}),
    ("todo", "Compress hero images", "low", None, ["design", "infra"], None, {"estimate": 1, "area": "frontend"}),
    ("todo", "Redirect old blog URLs", "high", "linus", ["infra"], 5, {"estimate": 3, "area": "backend"}),
    ("todo", "Localise the landing page (German)", "medium", "ada", ["feature"], 21, {"estimate": 5, "area": "content"}),
    ("todo", "Add an RSS feed to the blog", "low", None, ["feature"], None, {"estimate": 2, "area": "backend"}),
    ("todo", "Choose an analytics provider", "medium", "grace", [], 12, {"estimate": 1, "area": "ops"}),
    ("inprogress", "Build the new navigation menu", "high", "linus", ["feature", "design"], 3, {"estimate": 5, "area": "frontend"}),
    ("inprogress", "Migrate content to the new CMS", "critical", "ada", ["infra"], 2, {"estimate": 8, "area": "content"}),
    ("inprogress", "Dark mode colour palette", "medium", "grace", ["design"], 6, {"estimate": 3, "area": "frontend"}),
    ("inprogress", "Spam protection for the contact form", "high", "linus", ["bug", "feature"], 4, {"estimate": 3, "area": "backend"}),
    ("inprogress", "Accessibility pass on forms", "medium", "grace", ["bug"], 9, {"estimate": 5, "area": "frontend"}),
    ("inprogress", "CDN configuration", "medium", "ada", ["infra"], 8, {"estimate": 2, "area": "ops"}),
    ("inreview", "New footer with sitemap links", "low", "linus", ["design"], 1, {"estimate": 2, "area": "frontend"}),
    ("inreview", "Search results page", "high", "ada", ["feature"], 2, {"estimate": 5, "area": "frontend"}),
    ("inreview", "Fix layout shift on mobile Safari", "critical", "linus", ["bug"], -1, {"estimate": 3, "area": "frontend"}),
    ("inreview", "Blog post template", "medium", "grace", ["design"], 5, {"estimate": 3, "area": "content"}),
    ("inreview", "TLS certificates for staging", "high", "ada", ["infra"], 0, {"estimate": 1, "area": "ops"}),
    ("done", "Kick-off workshop", "medium", "ada", [], -20, {"estimate": 1}),
    ("done", "Sitemap and information architecture", "high", "grace", ["design"], -14, {"estimate": 5, "area": "content"}),
    ("done", "Choose the web font", "low", "grace", ["design"], -12, {"estimate": 1, "area": "frontend"}),
    ("done", "Wireframes for the home page", "high", "grace", ["design"], -10, {"estimate": 5, "area": "frontend"}),
    ("done", "Set up the repository and CI", "medium", "linus", ["infra"], -9, {"estimate": 2, "area": "ops"}),
    ("done", "Fix 404 on /about", "critical", "linus", ["bug"], -7, {"estimate": 1, "area": "backend"}),
    ("done", "Style guide v1", "medium", "grace", ["design"], -5, {"estimate": 3, "area": "frontend"}),
    ("cancelled", "Animated splash screen", "low", None, ["design"], None, {"estimate": 3, "area": "frontend"}),
    ("cancelled", "Self-host the comments system", "medium", "linus", ["infra"], None, {"estimate": 8, "area": "backend"}),
    ("cancelled", "Newsletter pop-up", "low", None, ["feature"], None, {"estimate": 1}),
]
# parent title -> subtasks (same tuple shape)
WEBSITE_SUBTASKS = {
    "Migrate content to the new CMS": [
        ("done", "Export the old pages", "medium", "ada", ["infra"], -3, {"estimate": 2, "area": "content"}),
        ("inprogress", "Map page types to CMS models", "high", "ada", [], 1, {"estimate": 3, "area": "backend"}),
        ("todo", "Import the blog archive", "medium", "linus", [], 6, {"estimate": 3, "area": "content"}),
    ],
    "Build the new navigation menu": [
        ("todo", "Mobile hamburger menu", "medium", "linus", ["design"], 5, {"estimate": 2, "area": "frontend"}),
    ],
}
MOBILE_TASKS = [
    ("todo", "Push notification permission prompt", "medium", "margaret", ["feature"], 10, {"platform": "both"}),
    ("todo", "Offline mode for the task list", "high", "margaret", ["feature"], 20, {"platform": "both"}),
    ("todo", "App Store screenshots", "low", "grace", ["design"], 25, {"platform": "ios"}),
    ("inprogress", "Sign in with passkeys", "high", "margaret", ["feature"], 6, {"platform": "both"}),
    ("inprogress", "Crash on Android 12 when rotating", "critical", "ada", ["bug"], 1, {"platform": "android"}),
    ("inreview", "Onboarding carousel", "medium", "grace", ["design"], 3, {"platform": "both"}),
    ("done", "Project setup with React Native", "medium", "ada", [], -15, {"platform": "both"}),
    ("done", "Design system tokens", "medium", "grace", ["design"], -8, {"platform": "both"}),
    ("done", "Login screen", "high", "margaret", ["feature"], -4, {"platform": "both"}),
    ("cancelled", "Tablet layout for v1", "low", None, ["design"], None, {"platform": "ios"}),
]
DESCRIPTIONS = {
    "Migrate content to the new CMS": "Move every page of the old site into the new CMS. "
    "Subtasks track the export, the content model and the blog archive.",
    "Fix layout shift on mobile Safari": "The hero image pushes the page down after load on iOS 17. "
    "Reserve its height with an aspect-ratio box.",
    "Crash on Android 12 when rotating": "Reproducible on a Pixel 6: rotate while the task list "
    "is loading. Stack trace in the comments.",
}
# task title -> [(author, body)]
COMMENTS = {
    "Migrate content to the new CMS": [
        ("ada", "Export script is done; 412 pages came out cleanly."),
        ("grace", "Can we drop the 2015 press releases instead of migrating them?"),
        ("ada", "Yes, let's archive them as a static page."),
    ],
    "Fix layout shift on mobile Safari": [
        ("linus", "Fixed by reserving the image height; please check on a real iPhone."),
        ("margaret", "Looks good on my iPhone 13."),
    ],
    "Search results page": [("grace", "Design review: highlight the matched words, please.")],
    "Build the new navigation menu": [("linus", "Desktop version is up on staging.")],
    "Crash on Android 12 when rotating": [
        ("margaret", "java.lang.IllegalStateException: Fragment not attached to a context."),
    ],
}
# project name -> (description, {first name: explicit project role}, custom fields, tasks, subtasks)
PROJECTS = [
    (
        "Website relaunch",
        "The new marketing site: content, design and infrastructure.",
        {"ada": ProjectRole.OWNER, "linus": ProjectRole.EDITOR, "margaret": ProjectRole.VIEWER},
        [
            ("estimate", "Estimate (points)", CustomFieldType.NUMBER, []),
            ("area", "Area", CustomFieldType.SELECT, ["frontend", "backend", "content", "ops"]),
        ],
        WEBSITE_TASKS,
        WEBSITE_SUBTASKS,
    ),
    (
        "Mobile app",
        "iOS and Android apps for the board.",
        {"ada": ProjectRole.OWNER, "margaret": ProjectRole.EDITOR},
        [("platform", "Platform", CustomFieldType.SELECT, ["ios", "android", "both"])],
        MOBILE_TASKS,
        {},
    ),
]

# Within the default request limits (about 3,100 of 10,000 points; tests/test_cli.py runs it):
# the viewer's organizations, then the demo organization's boards.
FIRST_QUERY = """\
query Demo {
  viewer {
    user { name email }
    organizations {
      role
      organization { name slug }
    }
  }
  organization(slug: "demo") {
    projects(first: 10) {
      totalCount
      nodes {
        id
        name
        taskCount
        board {
          columns {
            status
            tasks(first: 5) {
              totalCount
              nodes { id title priority dueDate assignee { name } labels { name color } }
            }
          }
        }
      }
    }
  }
}"""


@dataclass(frozen=True)
class DemoInfo:
    created: bool
    graphiql_url: str
    access_token: str
    expires_at: datetime
    email: str = USERS[0][0]
    password: str = DEMO_PASSWORD
    first_query: str = FIRST_QUERY

    @property
    def headers_json(self) -> str:
        return json.dumps({"Authorization": f"Bearer {self.access_token}"})

    def instructions(self) -> str:
        state = (
            "created" if self.created else "already existed; nothing was changed, here is a new token"
        )
        users = "\n".join(
            f"    {email:<20} {role.value}{_PROJECT_NOTES.get(email, '')}" for email, _, role in USERS
        )
        return f"""\
Demo organization "Demo Org" (slug: {DEMO_SLUG}) {state}.
  Users, all with the password "{self.password}":
{users}

GraphiQL: {self.graphiql_url}
Paste this into GraphiQL's Headers tab (a token for {self.email}, valid until {self.expires_at:%Y-%m-%d %H:%M} UTC):

{self.headers_json}

Or log in as anyone above with the logIn mutation and use its accessToken instead:

mutation {{ logIn(input: {{email: "{self.email}", password: "{self.password}"}}) {{ accessToken }} }}

Then run this first query:

{self.first_query}
"""


_PROJECT_NOTES = {
    "grace@demo.pcg": " (admin of every project through the organization)",
    "linus@demo.pcg": " (editor on Website relaunch; cannot see Mobile app)",
    "margaret@demo.pcg": " (viewer on Website relaunch, editor on Mobile app)",
}


async def seed_demo(settings: Settings) -> DemoInfo:
    """Create the demo organization once; always return fresh login instructions.

    Needs an initialized Tortoise context and a settings object that carries the secret key.
    """
    if not await Organization.exists(slug=DEMO_SLUG):
        try:
            await _create()
            created = True
        except IntegrityError:
            # Another process seeded concurrently; its rows are as good as ours.
            if not await Organization.exists(slug=DEMO_SLUG):
                raise
            created = False
    else:
        created = False
    user = await _login_user()
    # A session of its own, so that logOutEverywhere (or an owner) can end it like any other.
    issued = await issue_outside_request(
        user, settings.secret_key, DEMO_TOKEN_TTL, user_agent="pcg seed --demo"
    )
    return DemoInfo(
        created=created,
        graphiql_url=settings.public_url.rstrip("/") + "/graphql",
        access_token=issued.access_token,
        expires_at=issued.expires_at,
        email=user.email,
    )


async def _login_user() -> User:
    """Ada, or whoever owns the demo org now if Ada's account is gone."""
    user = await User.get_or_none(email=USERS[0][0], is_active=True)
    if user is not None:
        return user
    owner = await (
        OrganizationMember.filter(organization__slug=DEMO_SLUG, role=OrgRole.OWNER, user__is_active=True)
        .order_by("id")
        .first()
        .select_related("user")
    )
    if owner is None:
        raise RuntimeError("The demo organization has no active owner to issue a token for")
    return owner.user


async def _create() -> None:
    # Hashing is slow on purpose: do it before taking the database's write lock.
    hashes = {email: hash_password(DEMO_PASSWORD) for email, _, _ in USERS}
    today = date.today()
    async with in_transaction():
        org = await Organization.create(slug=DEMO_SLUG, name="Demo Org", plan=Plan.PRO)
        users: dict[str, User] = {}
        for email, name, role in USERS:
            user = await User.get_or_none(email=email)
            if user is None:
                # Demo addresses (@demo.pcg) receive no mail: they start verified.
                user = await User.create(
                    email=email, name=name, password_hash=hashes[email], email_verified_at=datetime.now(UTC)
                )
            users[email.split("@")[0]] = user
            await OrganizationMember.create(organization=org, user=user, role=role)
        ada = users["ada"]
        counts = {}
        for name, description, roles, fields, tasks, subtasks in PROJECTS:
            project = await Project.create(
                organization=org, name=name, description=description, created_by=ada
            )
            for who, role in roles.items():
                await ProjectMember.create(project=project, user=users[who], role=role)
            for key, label, kind, options in fields:
                await CustomFieldDefinition.create(
                    project=project, key=key, name=label, type=kind, options=options
                )
            labels = {
                n: await Label.create(project=project, name=n, color=c) for n, c in LABELS
            }
            board = _Board(project, users, labels, today)
            for row in tasks:
                parent = await board.add(row)
                for sub in subtasks.get(parent.title, []):
                    await board.add(sub, parent=parent)
            counts[name] = board.count
        # The organization's first entry: seq 1 of its live audit log (resolvers/audit/stream.py).
        await AuditEntry.create(
            organization=org,
            actor=ada,
            action="demo.seed",
            resource_type="Organization",
            resource_id=str(org.id),
            after={"slug": DEMO_SLUG, "users": [e for e, _, _ in USERS], "tasks": counts},
            seq=1,
        )
        await Organization.filter(id=org.id).update(audit_seq=1)


class _Board:
    """Appends tasks at the bottom of their column, as createTask would."""

    def __init__(self, project: Project, users: dict[str, User], labels: dict[str, Label], today: date):
        self.project = project
        self.users = users
        self.labels = labels
        self.today = today
        self.last: dict[TaskStatus, str | None] = {}
        self.count = 0

    async def add(self, row, parent: Task | None = None) -> Task:
        status, title, priority, assignee, labels, due_in, props = row
        status, priority = TaskStatus(status), TaskPriority(priority)
        position = generate_key_between(self.last.get(status), None)
        self.last[status] = position
        task = await Task.create(
            project=self.project,
            title=title,
            description=DESCRIPTIONS.get(title, ""),
            status=status,
            priority=priority,
            priority_rank=PRIORITY_RANK[priority],
            position=position,
            assignee=self.users[assignee] if assignee else None,
            created_by=self.users["ada"],
            parent=parent,
            due_date=self.today + timedelta(days=due_in) if due_in is not None else None,
            custom_properties=props,
        )
        for name in labels:
            await TaskLabel.create(task=task, label=self.labels[name])
        for author, body in COMMENTS.get(title, []):
            await Comment.create(task=task, author=self.users[author], body=body)
        self.count += 1
        return task


__all__ = ["DEMO_PASSWORD", "DEMO_SLUG", "DemoInfo", "seed_demo"]
