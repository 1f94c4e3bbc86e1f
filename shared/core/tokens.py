"""API tokens of the reward gateway: made by the CLI, checked by the gateway; only
their SHA-256 is ever stored (pure)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "crm_"


def new_token() -> str:
    """A fresh secret token (shown once to whoever made it)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """How a token is stored and looked up: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()
