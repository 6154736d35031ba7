"""Logs an operator can follow: request ids on every line (masked errors included), JSON lines
with PCG_LOG_FORMAT=json, and one line per slow operation."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time

import httpx
import pytest

from resolvers.log_context import LogContext, current
from server.logs import JsonFormatter, RequestContextFilter, TextFormatter, redact_query_string
from server.settings import PROJECT_ROOT, Settings, SettingsError
from tests.faulty_server import FAULT
from tests.processes import _stop, free_port, serving, subprocess_env
from tests.querycount import count_statements

ORG = 'query FindOrg { organization(slug: "anything") { id } }'
ME = "query Me { viewer { user { id } } }"


def test_masked_error_logs_one_json_line_with_the_responses_request_id(tmp_path):
    """A real `pcg serve` (with one resolver made to fail) and PCG_LOG_FORMAT=json: the
    masked error's line carries the id the client got back, as do the slow-operation line
    (threshold 0 ms) and uvicorn's access line; every line on stderr is one JSON object."""
    port = free_port()
    env = subprocess_env(tmp_path, PCG_LOG_FORMAT="json", PCG_SLOW_OPERATION_MS="0",
                         PCG_SECRET_KEY="log-test-secret-" + "x" * 32)
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faulty_server", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=PROJECT_ROOT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": ORG},
                              headers={"X-Request-ID": "trace-me-42"})
    finally:
        _stop(proc)

    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "trace-me-42"}
    assert FAULT not in response.text
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert all(isinstance(line, dict) and {"time", "level", "logger", "message"} <= line.keys() for line in lines)
    ours = [line for line in lines if line.get("requestId") == "trace-me-42"]

    masked = [line for line in ours if line["logger"] == "pcg.errors"]
    assert len(masked) == 1, lines
    assert masked[0]["level"] == "error"
    assert masked[0]["message"] == "unexpected error at organization"
    assert masked[0]["operation"] == "FindOrg"
    assert FAULT in masked[0]["exception"]

    slow = [line for line in ours if line["logger"] == "pcg.operations"]
    assert len(slow) == 1, lines
    assert slow[0]["level"] == "warning"
    assert slow[0]["operation"] == "FindOrg" and slow[0]["operationType"] == "query"
    assert slow[0]["outcome"] == "INTERNAL_SERVER_ERROR"
    assert slow[0]["statements"] == 0 and slow[0]["cost"] >= 1
    assert isinstance(slow[0]["durationMs"], (int, float))

    access = [line for line in ours if line["logger"] == "uvicorn.access"]
    assert len(access) == 1 and "POST /graphql" in access[0]["message"]


@pytest.mark.settings(slow_operation_ms=0)
async def test_slow_operation_line_names_duration_and_statements(client, factory, caplog):
    owner = await factory.user()
    caplog.set_level(logging.WARNING, logger="pcg.operations")
    with count_statements() as counted:
        response = await client.post("/graphql", json={"query": ME},
                                     headers={"Authorization": f"Bearer {owner.token}"})
    assert response.status_code == 200 and "errors" not in response.json()
    [record] = [r for r in caplog.records if r.name == "pcg.operations"]
    assert record.levelno == logging.WARNING
    assert record.operation == "Me" and record.operation_type == "query" and record.outcome == "ok"
    assert record.statements == counted.count > 0
    assert record.getMessage().startswith("slow operation query Me: ")


@pytest.mark.settings(slow_operation_ms=10**9)
async def test_no_slow_line_under_the_threshold(client, factory, caplog):
    owner = await factory.user()
    caplog.set_level(logging.WARNING, logger="pcg.operations")
    response = await client.post("/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {owner.token}"})
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.name == "pcg.operations"]


def _formatted(formatter: logging.Formatter, context: LogContext | None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("pcg.test.format")
    logger.addHandler(handler)
    logger.propagate = False
    token = current.set(context)
    try:
        logger.warning("something happened")
    finally:
        current.reset(token)
        logger.removeHandler(handler)
    return stream.getvalue().strip()


def test_text_lines_carry_the_request_id_too():
    assert "[rid-7] something happened" in _formatted(TextFormatter(), LogContext("rid-7"))
    assert "[-] something happened" in _formatted(TextFormatter(), None)
    line = json.loads(_formatted(JsonFormatter(), LogContext("rid-8", operation="Op")))
    assert line["requestId"] == "rid-8" and line["operation"] == "Op" and line["level"] == "warning"


def test_log_settings_are_checked():
    assert Settings.from_env({"PCG_LOG_FORMAT": "json"}).log_format == "json"
    assert Settings.from_env({"PCG_SLOW_OPERATION_MS": "0"}).slow_operation_ms == 0
    for name, bad in (("PCG_LOG_FORMAT", "xml"), ("PCG_SLOW_OPERATION_MS", "-1"), ("PCG_LOG_LEVEL", "loud")):
        with pytest.raises(SettingsError):
            Settings.from_env({name: bad})


SECRET_PASSWORD = "correct-horse-battery-staple-7"


def test_access_lines_never_carry_query_string_values(tmp_path):
    """A real `pcg serve`: a GET request's document and variables (here a logIn with its
    password, refused as a GET mutation) and a websocket handshake's query string reach the
    log with their values redacted; the path, the parameter names and operationName stay."""
    import websockets.sync.client

    port = free_port()
    env = subprocess_env(tmp_path, PCG_SECRET_KEY="log-test-secret-" + "x" * 32)
    login = f'mutation Login {{ logIn(email: "a@example.com", password: "{SECRET_PASSWORD}") {{ token }} }}'
    with serving(env, port, tmp_path / "serve.log"):
        response = httpx.get(
            f"http://127.0.0.1:{port}/graphql",
            params={"query": login, "operationName": "Login",
                    "variables": json.dumps({"token": SECRET_PASSWORD})},
        )
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{port}/graphql?access_token={SECRET_PASSWORD}",
            subprotocols=["graphql-transport-ws"],
        ):
            pass
    assert response.status_code == 405
    log = (tmp_path / "serve.log").read_text()
    assert SECRET_PASSWORD not in log
    assert '"GET /graphql?query=[redacted]&operationName=Login&variables=[redacted] HTTP/1.1" 405' in log
    assert '"WebSocket /graphql?access_token=[redacted]"' in log


def test_redacting_odd_query_strings():
    assert redact_query_string("/graphql") == "/graphql"
    assert redact_query_string("/graphql?") == "/graphql?"
    assert redact_query_string("/x?flag") == "/x?flag=[redacted]"
    assert redact_query_string("/x?a=1&a=2") == "/x?a=[redacted]&a=[redacted]"
    assert redact_query_string("/x?operationName=a%26b%20c") == "/x?operationName=a%26b%20c"
    assert redact_query_string("/x?%%%") == "/x?%25%25%25=[redacted]"
