"""Optional OpenTelemetry tracing: with PCG_OTEL_ENDPOINT set, one span per GraphQL operation,
exported over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` in batches.

The SDK is an optional extra (`pip install 'pcg-graphql[otel]'`), imported only when the
setting asks for it. The span carries the operation's name, type, outcome, statement count,
cost and request id; the time spent in the database is not measured (Tortoise logs a statement
when it is sent, not when it returns), so it carries no database time.
"""

from __future__ import annotations

import asyncio

from resolvers import metrics
from server.settings import SettingsError

SERVICE_NAME = "pcg-graphql"


class Tracing:
    def __init__(self, provider) -> None:
        self.provider = provider

    async def shutdown(self) -> None:
        """Sends what is still batched (a blocking HTTP call: off the event loop)."""
        if metrics.tracer is not None and getattr(metrics.tracer, "_pcg_provider", None) is self.provider:
            metrics.tracer = None
        await asyncio.to_thread(self.provider.shutdown)


def start_tracing(endpoint: str) -> Tracing | None:
    if not endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise SettingsError(
            "PCG_OTEL_ENDPOINT needs the OpenTelemetry SDK: pip install 'pcg-graphql[otel]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    # Not the global provider: an embedding may have its own; this one serves the app only.
    tracer = provider.get_tracer("pcg.graphql")
    tracer._pcg_provider = provider  # type: ignore[attr-defined]
    metrics.tracer = tracer
    return Tracing(provider)
