"""The offline provider: deterministic, no model, no network.

It understands a small set of plain-English requests (see HELP), calls the same tools a
model would, and streams its answer token by token with a small delay, so clients see real
streaming. Anything else gets an answer listing what it can do.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from resolvers.nora.providers import Chunk, TextChunk, ToolCall, Usage, estimate_tokens

TOKEN_DELAY = 0.004  # seconds between streamed tokens

HELP = (
    "I'm NORA, running on the built-in offline assistant, so I understand a few requests:\n"
    "- summarize the board\n"
    "- list overdue tasks / my tasks / blocked tasks (tasks labelled \"blocked\")\n"
    "- find tasks about \"login\"\n"
    "- show task \"Fix login\"\n"
    "- create a task \"Fix login\"\n"
    "- move \"Fix login\" to done (or todo, in progress, in review, cancelled)\n"
    "- assign \"Fix login\" to Ada (a name, an email, or me)\n"
    "- set priority of \"Fix login\" to high (critical, high, medium, low)\n"
    "- comment on \"Fix login\": looks good\n"
    "- who is on the team\n"
    "Connect a model (PCG_NORA_PROVIDER=openai) for free-form questions."
)

STATUS_WORDS = {
    "todo": "todo", "to do": "todo", "to-do": "todo", "backlog": "todo",
    "in progress": "inprogress", "inprogress": "inprogress", "in-progress": "inprogress", "doing": "inprogress",
    "in review": "inreview", "inreview": "inreview", "review": "inreview", "in-review": "inreview",
    "done": "done", "complete": "done", "completed": "done", "finished": "done",
    "cancelled": "cancelled", "canceled": "cancelled",
}
STATUS_NAMES = {
    "todo": "To do", "inprogress": "In progress", "inreview": "In review", "done": "Done",
    "cancelled": "Cancelled",
}
PRIORITIES = ("critical", "high", "medium", "low")

_Q = r"[\"'“”‘’]?"  # optional quotes around a title


def _unquote(text: str) -> str:
    return text.strip().strip("\"'“”‘’").strip()


def _status(word: str) -> str | None:
    return STATUS_WORDS.get(re.sub(r"\s+", " ", word.strip().lower().rstrip(".!")))


def understand(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """(preface, tool, arguments) for a request the builtin provider understands."""
    t = text.strip().rstrip(".!?").strip()
    low = t.lower()
    m = re.match(
        r"^(?:please\s+|can you\s+|could you\s+)?(?:create|add|make|open)\s+(?:a\s+|an\s+)?(?:new\s+)?task"
        r"(?:\s+(?:called|named|titled))?\s*:?\s*(.+)$",
        t, re.IGNORECASE | re.DOTALL,
    )
    if m and _unquote(m.group(1)):
        title, args = _unquote(m.group(1)), {}
        p = re.match(r"^(.*?)\s*,?\s+with\s+(critical|high|medium|low)\s+priority$", title, re.IGNORECASE)
        if p:
            title, args["priority"] = _unquote(p.group(1)), p.group(2).lower()
        return "Creating the task…", "create_task", {"title": title, **args}
    m = re.match(r"^(?:please\s+)?move\s+(.+?)\s+(?:to|into)\s+(.+)$", t, re.IGNORECASE | re.DOTALL)
    if m and _status(m.group(2)):
        return "Moving it…", "update_task", {"task": _unquote(m.group(1)), "status": _status(m.group(2))}
    m = re.match(r"^(?:please\s+)?(?:mark)\s+(.+?)\s+(?:as\s+)?(done|complete|completed|cancelled|canceled|in progress|in review)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        return "Updating it…", "update_task", {"task": _unquote(m.group(1)), "status": _status(m.group(2))}
    m = re.match(r"^(?:please\s+)?(?:re)?assign\s+(.+?)\s+to\s+(.+)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        return "Assigning it…", "update_task", {"task": _unquote(m.group(1)), "assignee": _unquote(m.group(2))}
    m = re.match(
        r"^(?:please\s+)?(?:set|change)\s+(?:the\s+)?priority\s+(?:of|for|on)\s+(.+?)\s+to\s+(\w+)$", t, re.IGNORECASE | re.DOTALL
    ) or re.match(r"^(?:please\s+)?(?:set|change)\s+(.+?)(?:'s)?\s+priority\s+to\s+(\w+)$", t, re.IGNORECASE | re.DOTALL)
    if m and m.group(2).lower() in PRIORITIES:
        return "Changing the priority…", "update_task", {"task": _unquote(m.group(1)), "priority": m.group(2).lower()}
    m = re.match(r"^(?:please\s+)?comment\s+(?:on\s+)?(.+?)\s*:\s*(.+)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        return "Adding the comment…", "add_comment", {"task": _unquote(m.group(1)), "body": m.group(2).strip()}
    m = re.match(r"^(?:show|open|get|describe)\s+(?:me\s+)?(?:the\s+)?task\s+(.+)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        return "Looking it up…", "get_task", {"task": _unquote(m.group(1))}
    m = re.match(r"^(?:find|search(?:\s+for)?)\s+(?:tasks?\s+)?(?:about\s+|matching\s+|named\s+)?(.+)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        return "Searching…", "search_tasks", {"query": _unquote(m.group(1))}
    if re.search(r"\boverdue\b|\blate\b", low):
        return "Checking due dates…", "search_tasks", {"overdue": True}
    if re.search(r"\bblocked\b", low):
        return "Looking for blocked tasks…", "search_tasks", {"label": "blocked"}
    if re.search(r"\bmy (?:tasks|work|issues)\b|\bassigned to me\b|\bon my plate\b", low):
        return "Looking at your tasks…", "search_tasks", {"assignee": "me"}
    if re.search(r"\bsummar(?:y|ise|ize)\b|\boverview\b|\bhow is the board\b|\bboard status\b", low):
        return "Reading the board…", "summarize_board", {}
    if re.search(r"\bwho(?:'s| is) on\b|\bmembers\b|\bthe team\b", low):
        return "Looking at the team…", "list_members", {}
    return None


def _task_line(task: dict[str, Any]) -> str:
    status = task.get("status", "")
    parts = [STATUS_NAMES.get(status, status), task.get("priority")]
    if task.get("assignee"):
        parts.append(task["assignee"])
    if task.get("dueDate"):
        parts.append(f"due {task['dueDate']}")
    return f"- {task['title']} ({', '.join(p for p in parts if p)})"


def _error_text(tool: str, args: dict[str, Any], error: dict[str, Any]) -> str:
    code, message = error.get("code"), error.get("message", "")
    if code == "FORBIDDEN":
        return (
            f"I can't do that for you: {message.rstrip('.')}. Ask an editor or an admin of the "
            "project, and nothing was changed."
        )
    if code == "NOT_FOUND":
        what = args.get("task") or args.get("query") or "that"
        return f"I couldn't find a task matching \"{what}\" that you can see."
    if code == "AMBIGUOUS":
        options = "\n".join(f"- {c}" for c in error.get("candidates", []))
        return f"{message}\n{options}\nSay which one, using its full title."
    return f"That didn't work: {message}"


def answer(tool: str, args: dict[str, Any], result: dict[str, Any]) -> str:
    """The reply text for a tool's result (or error)."""
    if not result.get("ok", False):
        return _error_text(tool, args, result.get("error") or {})
    data = result.get("result") or {}
    if tool == "create_task":
        task = data["task"]
        return (
            f"Created \"{task['title']}\" in {STATUS_NAMES[task['status']]} of {task['project']} "
            f"({task['priority']} priority)."
        )
    if tool == "update_task":
        task, changed = data["task"], data.get("changed", [])
        if not changed:
            return f"\"{task['title']}\" already looked like that; nothing changed."
        said = []
        if "status" in changed:
            said.append(f"moved it to {STATUS_NAMES[task['status']]}")
        if "assigneeId" in changed:
            said.append(f"assigned it to {task['assignee']}" if task["assignee"] else "unassigned it")
        if "priority" in changed:
            said.append(f"set its priority to {task['priority']}")
        if "dueDate" in changed:
            said.append(f"set its due date to {task['dueDate']}" if task["dueDate"] else "cleared its due date")
        return f"Done: \"{task['title']}\" — I " + ", ".join(said) + "."
    if tool == "add_comment":
        return f"Commented on \"{data['task']['title']}\"."
    if tool == "get_task":
        task = data["task"]
        lines = [f"\"{task['title']}\" in {task['project']}:", _task_line(task)[2:]]
        if task.get("labels"):
            lines.append("Labels: " + ", ".join(task["labels"]))
        if task.get("description"):
            lines.append(task["description"])
        lines.append(f"{task.get('commentCount', 0)} comment(s).")
        return "\n".join(lines)
    if tool == "search_tasks":
        tasks, total = data.get("tasks", []), data.get("total", 0)
        kind = (
            "overdue tasks" if args.get("overdue") else
            "blocked tasks" if args.get("label") == "blocked" else
            "tasks assigned to you" if args.get("assignee") == "me" else
            f"tasks matching \"{args.get('query')}\"" if args.get("query") else "tasks"
        )
        if not tasks:
            return f"There are no open {kind}." if not args.get("query") else f"I found no {kind}."
        more = f" (showing {len(tasks)})" if total > len(tasks) else ""
        return f"I found {total} {kind}{more}:\n" + "\n".join(_task_line(t) for t in tasks)
    if tool == "summarize_board":
        parts = []
        for project in data.get("projects", []):
            cols = project["columns"]
            line = (
                f"{project['name']}: {project['open']} open tasks — {cols['todo']} to do, "
                f"{cols['inprogress']} in progress, {cols['inreview']} in review; "
                f"{cols['done']} done, {cols['cancelled']} cancelled."
            )
            extra = []
            if project["overdue"]:
                extra.append(f"{project['overdue']} overdue")
            if project["unassigned"]:
                extra.append(f"{project['unassigned']} unassigned")
            if project["blocked"]:
                extra.append(f"{project['blocked']} blocked")
            if extra:
                line += " Watch out: " + ", ".join(extra) + "."
            parts.append(line)
        return "\n".join(parts) if parts else "There is no board I can see here yet."
    if tool == "list_members":
        people = data.get("members", [])
        return "The team:\n" + "\n".join(f"- {p['name']} <{p['email']}> ({p['role']})" for p in people)
    return "Done."


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or [text]


class BuiltinProvider:
    name = "builtin"
    model = "nora-builtin-1"

    async def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> AsyncGenerator[Chunk, None]:
        last = messages[-1]
        if last["role"] == "tool":
            text = self._after_tools(messages)
            calls: list[ToolCall] = []
        else:
            understood = understand(last.get("content") or "")
            if understood is None:
                text, calls = HELP, []
            else:
                preface, tool, args = understood
                text = preface
                calls = [ToolCall(f"call_{len(messages)}", tool, orjson.dumps(args).decode())]
        out = 0
        for token in _tokens(text):
            await asyncio.sleep(TOKEN_DELAY)
            out += 1
            yield TextChunk(token)
        for call in calls:
            out += estimate_tokens(call.arguments)
            yield call
        prompt = sum(estimate_tokens(m.get("content") or "") for m in messages)
        yield Usage(prompt, out)

    @staticmethod
    def _after_tools(messages: list[dict[str, Any]]) -> str:
        results: list[dict[str, Any]] = []
        i = len(messages) - 1
        while i >= 0 and messages[i]["role"] == "tool":
            results.insert(0, messages[i])
            i -= 1
        asked = {c["id"]: c for c in (messages[i].get("tool_calls") or [])} if i >= 0 else {}
        texts = []
        for message in results:
            call = asked.get(message.get("tool_call_id"), {})
            function = call.get("function", {})
            try:
                args = orjson.loads(function.get("arguments") or "{}")
                result = orjson.loads(message.get("content") or "{}")
            except orjson.JSONDecodeError:
                args, result = {}, {}
            texts.append(answer(function.get("name", ""), args, result))
        return "\n" if not texts else "\n" + "\n".join(texts)
