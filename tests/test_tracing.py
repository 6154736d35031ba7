"""PCG_OTEL_ENDPOINT: one span per operation, exported over OTLP/HTTP to a real HTTP server
standing in for the collector, and decoded with OpenTelemetry's own protobuf definitions."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from resolvers import metrics
from server.app import create_app
from server.settings import replace
from tests.conftest import Factory
from tests.querycount import count_statements

ME = "query Me { viewer { user { id } } }"
BROKEN = "query Broken { noSuchField }"


class Collector:
    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list:
        found = []
        for path, body in self.requests:
            assert path == "/v1/traces"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    running = Collector()
    yield running
    running.close()


def _attributes(span) -> dict:
    out = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = value.int_value if value.HasField("int_value") else value.string_value
    return out


async def test_one_span_per_operation(settings, collector, password_hash):
    app = create_app(replace(settings, otel_endpoint=collector.url))
    async with LifespanManager(app):
        owner = await Factory(password_hash).user("Traced")
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            with count_statements() as counted:
                ok = await http.post("/graphql", json={"query": ME}, headers={
                    "Authorization": f"Bearer {owner.token}", "X-Request-ID": "span-rid-1"})
            assert ok.status_code == 200 and "errors" not in ok.json()
            broken = await http.post("/graphql", json={"query": BROKEN})
            assert broken.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert metrics.tracer is not None
    # The lifespan's end flushed the batch.
    assert metrics.tracer is None
    spans = collector.spans()
    assert [span.name for _, span in spans] == ["query Me", "query Broken"]
    assert all(resource["service.name"] == "pcg-graphql" for resource, _ in spans)
    me, bad = (_attributes(span) for _, span in spans)
    assert me == {
        "graphql.operation.name": "Me", "graphql.operation.type": "query", "pcg.outcome": "ok",
        "pcg.statements": counted.count, "pcg.request_id": "span-rid-1", "pcg.cost": me["pcg.cost"],
        "enduser.id": str(owner.user.id),
    }
    assert counted.count > 0 and me["pcg.cost"] >= 1
    assert bad["pcg.outcome"] == "GRAPHQL_VALIDATION_FAILED" and bad["pcg.statements"] == 0
    assert "pcg.cost" not in bad  # refused before its cost was accepted


async def test_no_endpoint_no_tracer(app):
    assert metrics.tracer is None
