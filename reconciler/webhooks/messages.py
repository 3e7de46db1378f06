"""Standard Webhooks messages: the signature, and what became of sending one.

Signatures follow the Standard Webhooks specification: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the secret's bytes, so
partners verify with any Standard Webhooks library. During a secret rotation's overlap a message carries
one signature per secret, space-separated, which the specification allows: a receiver holding either
secret verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Delivery", "sign"]


def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<signature>`` under each of ``secrets``, in their order."""
    if not secrets:
        raise ValueError("a webhook message needs at least one signing secret")
    content = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(_signature(secret, content) for secret in secrets)


def _signature(secret: str, content: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt: 2xx is ``ok``; ``error`` says what went wrong, never anything secret."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    latency_ms: int | None = None  # from sending the request to its answer (or its failure)
