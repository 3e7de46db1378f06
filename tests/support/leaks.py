"""Searching for an issued secret in every form it could leak in."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping


def forms(secret: str) -> list[bytes]:
    """The secret as text, base64 of it, and its random bytes (raw, base64, base64url, hex)."""
    body = secret.split("_", 2)[-1] if secret.startswith("scp_cs_") else secret.removeprefix("whsec_")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if secret.startswith("scp_cs_") else (
        base64.b64decode(body))  # fmt: skip
    return [
        secret.encode(),
        base64.b64encode(secret.encode()),
        body.encode(),
        raw,
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
    ]


def assert_nowhere(secrets: Iterable[str], haystacks: Mapping[str, bytes]) -> None:
    for secret in secrets:
        for form in forms(secret):
            for where, content in haystacks.items():
                assert form not in content, f"a form of an issued secret was found in {where}"
