"""NORA, the assistant: conversations, the streamed reply engine, tools and providers."""
