"""Model providers. A provider turns a chat (OpenAI message format) and the tool schemas
into a stream of chunks: text, complete tool calls, and token usage.

Chosen by PCG_NORA_PROVIDER: `builtin` (offline, deterministic) or `openai` (any
OpenAI-compatible chat-completions endpoint: OpenAI, Ollama, vLLM).
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from server.settings import Settings


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class Usage:
    tokens_in: int
    tokens_out: int


Chunk = TextChunk | ToolCall | Usage


class ProviderError(Exception):
    """The provider failed; `code` ends the reply as MessageFailed(code, message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Provider(Protocol):
    name: str
    model: str

    # An async generator: the engine closes it (aclose) when a turn ends early.
    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> AsyncGenerator[Chunk, None]: ...


def estimate_tokens(text: str) -> int:
    """About four characters per token: used when a provider reports no usage."""
    return math.ceil(len(text) / 4) if text else 0


def make_provider(settings: Settings) -> Provider:
    if settings.nora_provider == "openai":
        from resolvers.nora.providers.openai import OpenAIProvider

        return OpenAIProvider(
            base_url=settings.nora_base_url or "https://api.openai.com/v1",
            api_key=settings.nora_api_key,
            model=settings.nora_model or "gpt-4o-mini",
            timeout=settings.nora_timeout,
        )
    from resolvers.nora.providers.builtin import BuiltinProvider

    return BuiltinProvider()
