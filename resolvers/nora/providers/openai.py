"""Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM), streamed (SSE),
with tool calling, over httpx; httpx-sse frames the events (multi-line `data:`, comments,
`event:`/`id:`/`retry:` fields, CR/LF/CRLF line ends, as the SSE specification has them).

Every failure ends in a ProviderError with a stable code, never a hung stream: a connect
or per-chunk read that takes longer than PCG_NORA_TIMEOUT is PROVIDER_TIMEOUT, and a whole
turn is capped at MAX_TURN_SECONDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, SSEError

from resolvers.nora.providers import Chunk, ProviderError, TextChunk, ToolCall, Usage

MAX_TURN_SECONDS = 600.0
MAX_ERROR_BODY = 300


class OpenAIProvider:
    name = "openai"

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))

    async def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> AsyncGenerator[Chunk, None]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            # The last chunk then carries the token counts (OpenAI, Ollama and vLLM honour it).
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            async with asyncio.timeout(MAX_TURN_SECONDS):
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    async with client.stream(
                        "POST", self.url, content=orjson.dumps(body), headers=headers
                    ) as response:
                        if response.status_code >= 400:
                            raise await _http_error(response)
                        async for chunk in _chunks(response):
                            yield chunk
        except TimeoutError:
            raise ProviderError(
                "PROVIDER_TIMEOUT", f"The model provider did not finish within {MAX_TURN_SECONDS:.0f} s"
            ) from None
        except httpx.TimeoutException:
            raise ProviderError(
                "PROVIDER_TIMEOUT",
                f"The model provider did not answer within {self.timeout.read:.0f} s",
            ) from None
        except httpx.ConnectError:
            raise ProviderError(
                "PROVIDER_UNAVAILABLE", "Could not connect to the model provider"
            ) from None
        except SSEError:
            raise ProviderError("PROVIDER_ERROR", "The model provider did not answer with an event stream") from None
        except (httpx.RemoteProtocolError, httpx.ReadError):
            raise ProviderError(
                "PROVIDER_ERROR", "The model provider closed the connection in the middle of the answer"
            ) from None
        except httpx.HTTPError as error:
            raise ProviderError("PROVIDER_ERROR", f"Model provider request failed ({type(error).__name__})") from None


async def _http_error(response: httpx.Response) -> ProviderError:
    raw = (await response.aread())[:2000]
    detail = raw.decode(errors="replace")
    try:
        parsed = orjson.loads(raw)
        detail = str((parsed.get("error") or {}).get("message") or detail)
    except (orjson.JSONDecodeError, AttributeError):
        pass
    code = "PROVIDER_RATE_LIMITED" if response.status_code == 429 else "PROVIDER_ERROR"
    return ProviderError(
        code, f"The model provider answered HTTP {response.status_code}: {detail[:MAX_ERROR_BODY]}"
    )


async def _chunks(response: httpx.Response) -> AsyncIterator[Chunk]:
    calls: dict[int, dict[str, str]] = {}
    finished = False
    async for sse in EventSource(response).aiter_sse():
        if not sse.data:
            continue  # the specification dispatches no event without data (a lone `retry:`)
        if sse.event == "error":
            # Not OpenAI's own form, but some compatible servers report a failure this way.
            raise ProviderError("PROVIDER_ERROR", f"The model provider failed: {_error_text(sse.data)}")
        if sse.event not in ("", "message"):
            continue  # an event type this client does not know (e.g. `ping`)
        data = sse.data.strip()
        if data == "[DONE]":
            finished = True
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderError("PROVIDER_ERROR", "The model provider sent a malformed chunk") from None
        if not isinstance(event, dict):
            raise ProviderError("PROVIDER_ERROR", "The model provider sent a malformed chunk")
        if event.get("error"):
            raise ProviderError("PROVIDER_ERROR", f"The model provider failed: {_error_text(event)}")
        usage = event.get("usage")
        if isinstance(usage, dict):
            yield Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield TextChunk(delta["content"])
            for position, part in enumerate(delta.get("tool_calls") or []):
                call = calls.setdefault(part.get("index", position), {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                function = part.get("function") or {}
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finished = True
    if not finished:
        raise ProviderError("PROVIDER_ERROR", "The model provider's stream ended before the answer did")
    for index in sorted(calls):
        call = calls[index]
        if call["name"]:
            yield ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"] or "{}")


def _error_text(payload: object) -> str:
    """The message of `{"error": {"message": ...}}` or `{"error": "..."}`, else the text
    (`payload`: a decoded chunk, or the JSON text of one)."""
    if isinstance(payload, str):
        raw = payload
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw[:MAX_ERROR_BODY]
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    text = error.get("message", error) if isinstance(error, dict) else error
    return str(text)[:MAX_ERROR_BODY]
