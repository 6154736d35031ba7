"""The client examples in client-examples/, run the way their readers run them, against a
real uvicorn serving the demo data: the Python and Node scripts as subprocesses (their printed
events are checked against the board event log, NORA's reply against the stored one), every
`sh` block of curl.md through bash, and the web board in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from models import BoardEvent, NoraConversation, NoraMessage, Project, Task, TaskStatus, User
from resolvers.event.log import BOARD, prune
from resolvers.ids import decode_id, to_global_id
from server.demo import DEMO_PASSWORD, seed_demo
from server.settings import PROJECT_ROOT
from tests.browser import chromium, unavailable

EXAMPLES = PROJECT_ROOT / "client-examples"
NODE_DIR = EXAMPLES / "node"
RUN_TIMEOUT = 30

CREATED = re.compile(r'^Created task (\S+) "(.*)" in (\w+)$', re.MULTILINE)
WATCHING = re.compile(r"^Watching (.+) over graphql-transport-ws$", re.MULTILINE)
BOARD_LINE = re.compile(r"^Board of (.+): TODO (\d+), INPROGRESS (\d+), INREVIEW (\d+), DONE (\d+), CANCELLED (\d+)$",
                        re.MULTILINE)
EVENT = re.compile(r"^event (\d+) (\w+) task=(\S+) ", re.MULTILINE)



def example_env(**extra: str) -> dict[str, str]:
    # No PCG_* from the caller's shell: the examples read PCG_URL, PCG_TOKEN, ...
    return {k: v for k, v in os.environ.items() if not k.startswith("PCG_")} | extra


async def run(*argv: str, cwd: Path = PROJECT_ROOT, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env or example_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{argv[:2]} did not finish in {RUN_TIMEOUT} s")
    output = out.decode()
    assert proc.returncode == 0, f"{argv[:2]} exited {proc.returncode}\n{output}\n{err.decode()}"
    return output


@pytest.fixture
async def demo(settings, live):
    """`make demo` in miniature: the demo organization behind a real uvicorn."""
    info = await seed_demo(settings)
    return {"url": f"http://{live}", "token": info.access_token}


async def assert_printed_events_match_the_log(output: str, title: str) -> Task:
    """The example created one task and moved it; the events it printed are the logged ones."""
    (task_gid, printed_title, status), = CREATED.findall(output)
    assert (printed_title, status) == (title, "TODO")
    task = await Task.get(id=decode_id(task_gid, "Task"))
    project = await Project.get(id=task.project_id)
    assert WATCHING.search(output).group(1) == project.name
    # The board was read (with its eventCursor) before the example created its task.
    name, *counts = BOARD_LINE.search(output).groups()
    assert name == project.name
    assert sum(map(int, counts)) == await Task.filter(project_id=project.id, archived_at=None).count() - 1
    assert (task.title, task.status, task.version) == (title, TaskStatus.INPROGRESS, 2)

    printed = [(int(seq), kind, gid) for seq, kind, gid in EVENT.findall(output)]
    logged = {e.seq: e for e in await BoardEvent.filter(project_id=project.id)}
    for seq, kind, gid in printed:
        assert logged[seq].type == kind, (seq, kind)
        assert to_global_id("Task", logged[seq].payload["taskId"]) == gid
    ours = [(kind, seq) for seq, kind, gid in printed if gid == task_gid]
    log_of_task = sorted((e.type, e.seq) for e in logged.values() if e.payload.get("taskId") == task.id)
    assert ours == [("TaskCreated", ours[0][1]), ("TaskMoved", ours[0][1] + 1)]
    assert ours == log_of_task
    return task


# -- Python ----------------------------------------------------------------------------------


async def test_python_example_logs_in_subscribes_and_prints_its_events(demo):
    output = await run(
        sys.executable, str(EXAMPLES / "python" / "live_board.py"),
        "--url", demo["url"], "--email", "ada@demo.pcg", "--password", DEMO_PASSWORD,
        "--project", "Website relaunch",
    )
    assert output.startswith("Logged in as Ada Lovelace <ada@demo.pcg>\n"), output
    assert "Website relaunch" in output and "Mobile app" in output
    await assert_printed_events_match_the_log(output, "Hello from Python")


async def test_python_nora_example_streams_the_reply_and_the_tool_call(demo):
    output = await run(
        sys.executable, str(EXAMPLES / "python" / "nora_chat.py"),
        "create a task Fix login from the example", "--project", "Mobile app",
        env=example_env(PCG_URL=demo["url"], PCG_TOKEN=demo["token"]),
    )
    lines = output.splitlines()
    assert lines[0] == "Logged in as Ada Lovelace <ada@demo.pcg>", output
    assert lines[2] == "You: create a task Fix login from the example"

    # NORA really did it, as Ada, on the conversation's project.
    project = await Project.get(name="Mobile app")
    task = await Task.get(project_id=project.id, title="Fix login from the example")
    assert task.created_by_id == (await User.get(email="ada@demo.pcg")).id
    conversation = await NoraConversation.get(id=decode_id(lines[1].split()[1], "NoraConversation"))
    assert conversation.project_id == project.id
    tool = await NoraMessage.get(conversation_id=conversation.id, role="tool")
    reply = await NoraMessage.get(id=tool.reply_to_id)
    assert (tool.tool_name, tool.tool_result["ok"]) == ("create_task", True)
    assert reply.status == "complete" and "Created" in reply.content

    # ...and the script printed it as it streamed: the call, its result, the reply's text.
    assert '  -> tool create_task {"title": "Fix login from the example"}' in lines
    assert any(line.startswith("  <- create_task ok: ") and to_global_id("Task", task.id) in line
               for line in lines), output
    text = [line.removeprefix("NORA: ") for line in lines if line.startswith("NORA: ")]
    assert "\n".join(text) == reply.content.replace("\n\n", "\n").strip(), output
    assert re.fullmatch(r"Reply complete \(\d+ tokens in, \d+ out, \d+ ms\)", lines[-1]), output


# -- Node ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node example needs Node.js 20 or newer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"the Node example needs Node.js 20+, found {version}"
    npm = shutil.which("npm")
    assert npm, "node is installed but npm is not"
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


async def test_node_example_with_an_api_key_prints_its_events(demo, gql, node):
    org = await gql.ok('{ organization(slug: "demo") { id } }', token=demo["token"])
    key = (await gql.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }",
        {"i": {"organizationId": org["organization"]["id"], "name": "node example", "role": "ADMIN"}},
        token=demo["token"],
    ))["createApiKey"]["key"]
    output = await run(
        node, "live-board.mjs", cwd=NODE_DIR,
        env=example_env(PCG_URL=demo["url"], PCG_TOKEN=key, PCG_PROJECT="Mobile app"),
    )
    # An API key acts as the member who created it.
    assert output.startswith("Logged in as Ada Lovelace <ada@demo.pcg>\n"), output
    await assert_printed_events_match_the_log(output, "Hello from Node")


# -- resuming from a cursor the server no longer keeps ------------------------------------------

RESYNC = re.compile(r"^Resync required \((.+)\): refetching the board$", re.MULTILINE)
RESUBSCRIBED = re.compile(r"^Resubscribing after (\S+)$", re.MULTILINE)


async def pruned_cursor(demo, gql) -> str:
    """The eventCursor of "Website relaunch", saved before events that have since been pruned
    (by the server's own pruning, after they aged past PCG_EVENT_RETENTION_DAYS)."""
    project = await Project.get(name="Website relaunch")
    gid = to_global_id("Project", project.id)
    cursor = (await gql.ok("query($id: ID!) { project(id: $id) { eventCursor } }", {"id": gid},
                           token=demo["token"]))["project"]["eventCursor"]
    await gql.ok("mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
                 {"i": {"projectId": gid, "title": "Pruned away"}}, token=demo["token"])
    await BoardEvent.filter(project_id=project.id).update(created_at=datetime.now(UTC) - timedelta(days=60))
    assert await prune(30) >= 1
    assert not await BoardEvent.filter(project_id=project.id).exists()
    return cursor


async def assert_resynced_then_followed(output: str, title: str) -> None:
    """The example was told ResyncRequired, read the board again, resubscribed after that
    read's cursor, and then saw its own two events."""
    assert RESYNC.findall(output) == ["The requested cursor is older than the retained event log"], output
    first, second = BOARD_LINE.findall(output)
    assert first == second  # nothing was written between the two reads
    project = await Project.get(name="Website relaunch")
    (resumed,) = RESUBSCRIBED.findall(output)
    after = BOARD.decode_cursor(resumed, project.id)
    assert after == (await Project.get(id=project.id)).event_seq - 2
    assert output.index("Resubscribing") < output.index("Created task")
    task = await assert_printed_events_match_the_log(output, title)
    assert [int(seq) for seq, _, _ in EVENT.findall(output)] == [after + 1, after + 2]
    assert task.project_id == project.id


async def test_python_example_resyncs_when_its_cursor_was_pruned(demo, gql):
    after = await pruned_cursor(demo, gql)
    output = await run(
        sys.executable, str(EXAMPLES / "python" / "live_board.py"),
        "--url", demo["url"], "--token", demo["token"], "--project", "Website relaunch",
        "--after", after, "--title", "Resynced in Python",
    )
    await assert_resynced_then_followed(output, "Resynced in Python")


async def test_node_example_resyncs_when_its_cursor_was_pruned(demo, gql, node):
    after = await pruned_cursor(demo, gql)
    output = await run(
        node, "live-board.mjs", "--after", after, "--title", "Resynced in Node", cwd=NODE_DIR,
        env=example_env(PCG_URL=demo["url"], PCG_TOKEN=demo["token"], PCG_PROJECT="Website relaunch"),
    )
    await assert_resynced_then_followed(output, "Resynced in Node")


# -- curl ------------------------------------------------------------------------------------

CURL_URL = "http://127.0.0.1:8000"


def curl_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", (EXAMPLES / "curl.md").read_text(), re.MULTILINE | re.DOTALL)


async def test_every_curl_block_runs_in_order_and_answers_without_errors(demo, tmp_path):
    if shutil.which("curl") is None:
        unavailable("curl is not installed")
    blocks = curl_blocks()
    assert len(blocks) >= 6 and CURL_URL in blocks[0]
    # Blocks are pasted in order into one shell: carry the variables they set to the next.
    names = sorted({m for b in blocks for m in re.findall(r"^\s*([A-Z_][A-Z0-9_]*)=", b, re.MULTILINE)})
    state = tmp_path / "state.sh"
    state.write_text("")
    answers = []
    for number, block in enumerate(blocks, 1):
        script = (
            f"set -euo pipefail\n. {state}\n{block.replace(CURL_URL, demo['url'])}\n"
            f"declare -p {' '.join(names)} > {state} 2>/dev/null || true\n"
        )
        output = await run("bash", "-c", script, cwd=tmp_path)
        documents = [json.loads(line) for line in output.splitlines() if line.strip()]
        for document in documents:
            assert "data" in document and not document.get("errors"), f"block {number}: {document}"
        if "curl" in block:
            assert documents, f"block {number} printed no answer:\n{block}"
        answers.extend(documents)

    # What the blocks did is in the database.
    moved = next(a["data"]["moveTask"]["task"] for a in answers if "moveTask" in a["data"])
    task = await Task.get(id=decode_id(moved["id"], "Task"))
    assert (task.title, task.status, task.version) == ("Written with curl", TaskStatus.INPROGRESS, 2)
    via_key = next(a["data"] for a in answers if "viewer" in a["data"])
    assert via_key["viewer"]["user"]["name"] == "Ada Lovelace"
    assert any("revokeApiKey" in a["data"] and a["data"]["revokeApiKey"]["apiKey"]["revokedAt"] for a in answers)


# -- the web board in headless Chromium ---------------------------------------------------------



@pytest.fixture(scope="module")
def browser():
    with chromium(window="1400,900") as driver:
        yield driver


def card_column(driver, task_gid: str) -> str | None:
    """The status of the column showing the task's card (None when it shows nowhere)."""
    return driver.execute_script(
        "const card = document.querySelector(`.card[data-id='${arguments[0]}']`);"
        "return card ? card.closest('.column').dataset.status : null;", task_gid)


def wait_for(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, 10, poll_frequency=0.05).until(lambda d: condition(d))
    except Exception as error:
        status = driver.execute_script("return document.querySelector('#status').textContent")
        console = [e["message"] for e in driver.get_log("browser")]
        raise AssertionError(f"timed out waiting for {what}; status: {status!r}; console: {console}") from error


def log_in(driver, url: str, project_gid: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/board#project={project_gid}")
    driver.execute_script("sessionStorage.clear()")
    # The form comes filled in with the demo user's credentials.
    driver.find_element(By.ID, "login-button").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live",
             "the board to go live")


async def test_web_board_shows_cards_appear_and_move_live(demo, browser):
    from selenium.webdriver.common.by import By

    project = await Project.get(name="Website relaunch")
    pid = to_global_id("Project", project.id)
    await asyncio.to_thread(log_in, browser, demo["url"], pid)
    columns = await asyncio.to_thread(
        browser.execute_script, "return [...document.querySelectorAll('.column')].map(c => c.dataset.status)")
    assert columns == ["TODO", "INPROGRESS", "INREVIEW", "DONE", "CANCELLED"]
    # The seeded board is all there.
    shown = await asyncio.to_thread(browser.execute_script, "return document.querySelectorAll('.card').length")
    assert shown == await Task.filter(project_id=project.id, archived_at=None).count()
    # No waiting for the subscription to reach the server: the page subscribed after the
    # eventCursor it read with the board, so a write from now on is replayed to it anyway.

    headers = {"Authorization": f"Bearer {demo['token']}"}
    async with httpx.AsyncClient(base_url=demo["url"], headers=headers) as http:
        async def mutate(query: str, variables: dict) -> dict:
            body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
            assert not body.get("errors"), body
            return body["data"]

        created = (await mutate(
            "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
            {"i": {"projectId": pid, "title": "Made by the test", "priority": "CRITICAL"}},
        ))["createTask"]["task"]
        gid = created["id"]
        await asyncio.to_thread(wait_for, browser, lambda d: card_column(d, gid) == "TODO", "the new card in To do")
        title = await asyncio.to_thread(
            lambda: browser.find_element(By.CSS_SELECTOR, f".card[data-id='{gid}'] .title").text)
        assert title == "Made by the test"

        await mutate("mutation($i: MoveTaskInput!) { moveTask(input: $i) { task { id } } }",
                     {"i": {"id": gid, "status": "DONE"}})
        await asyncio.to_thread(wait_for, browser, lambda d: card_column(d, gid) == "DONE", "the card to move to Done")

    # The page's own move button: a mutation from the browser, and the card follows its event.
    await asyncio.to_thread(
        lambda: browser.find_element(By.CSS_SELECTOR, f".card[data-id='{gid}'] button[data-move='CANCELLED']").click())
    await asyncio.to_thread(wait_for, browser, lambda d: card_column(d, gid) == "CANCELLED", "the card in Cancelled")
    task = await Task.get(id=decode_id(gid, "Task"))
    assert (task.status, task.version) == (TaskStatus.CANCELLED, 3)

    # ...and its own "add a task" box.
    def add_task() -> None:
        browser.find_element(By.ID, "new-title").send_keys("Added in the page")
        browser.find_element(By.CSS_SELECTOR, "#new-task button").click()

    await asyncio.to_thread(add_task)
    added = await asyncio.to_thread(wait_for, browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('.column[data-status=TODO] .card')]"
        ".find(c => c.querySelector('.title').textContent === 'Added in the page')?.dataset.id"), "the added card")
    assert (await Task.get(id=decode_id(added, "Task"))).title == "Added in the page"

    # Nothing but the server itself was contacted, and nothing went wrong on the page.
    origins = await asyncio.to_thread(browser.execute_script, (
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]"
        ".map(u => new URL(u).host)"))
    assert set(origins) == {demo["url"].removeprefix("http://")}
    errors = [e for e in await asyncio.to_thread(browser.get_log, "browser") if e["level"] == "SEVERE"]
    assert errors == []
