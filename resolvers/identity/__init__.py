"""Identity: users, passwords and tokens, API keys (and, later, sessions)."""
