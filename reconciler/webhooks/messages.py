"""Standard Webhooks messages: the signature, and what became of sending one.

Signatures follow the Standard Webhooks specification: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the secret's bytes, so
partners verify with any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["Delivery", "sign"]


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt: 2xx is ``ok``; ``error`` says what went wrong, never anything secret."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    latency_ms: int | None = None  # from sending the request to its answer (or its failure)
