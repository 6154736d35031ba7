"""Org: organizations, their members and invites, plans and their limits."""
