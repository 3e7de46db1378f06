"""The current time, which ``PARTNERCTL_NOW`` (ISO 8601) overrides for tests and drills."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from reconciler.errors import UsageError


def now() -> datetime:
    """Aware UTC time: ``PARTNERCTL_NOW`` when set, else the system clock."""
    override = os.environ.get("PARTNERCTL_NOW", "").strip()
    if not override:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(override.replace("Z", "+00:00"))
    except ValueError as error:
        raise UsageError(
            f"PARTNERCTL_NOW={override!r} is not an ISO 8601 time; use e.g. 2027-01-31T12:00:00Z"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
