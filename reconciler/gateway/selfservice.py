"""The partner self-service API (DESIGN §8): a partner's own status, delivery log and replays, with its own token.

    GET  /v1/self                                  phase, health, conditions, webhooks, credential, last sync
    GET  /v1/self/webhooks/{name}/deliveries       the delivery log (?status=&since=&limit=), newest first
    POST /v1/self/webhooks/{name}/replay           {"since", "until"?, "includeDelivered"?}: at most 7 days

Any valid access token of the partner will do (no scope is needed), and the partner is the token's:
no request names another partner, so none can read or replay another's deliveries. Replays are
limited per partner (REPLAY_POLICY) on top of the partner's own rate limit. Every method here runs in
a store thread.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from reconciler import clock
from reconciler.credentials import active_credential
from reconciler.engine.journal import Journal
from reconciler.engine.status import status_json
from reconciler.errors import InvalidState, NotFound, UsageError
from reconciler.gateway.limits import Limiter, Policy
from reconciler.stores import Stores
from reconciler.stores.records import PartnerRecord
from reconciler.webhooks.operations import attempt_json, replay, window

__all__ = ["PREFIX", "REPLAY_POLICY", "SelfService", "SelfServiceError"]

PREFIX = "/v1/self"
LONGEST_REPLAY = timedelta(days=7)
LOG_DAYS = 30
MAX_LIMIT = 1000
# Three replays at once, then one a minute: enough to recover from an outage, never a flood of work.
REPLAY_POLICY = Policy("replay", per_minute=1, burst=3)
# What a partner sees of its own status: not who approved it nor at which revision (internal).
SHOWN = ("partner", "phase", "health", "conditions", "scopes", "credential", "webhooks", "lastSuccessfulSync")
STATUSES = ("delivered", "failed", "held")


class SelfServiceError(Exception):
    """A refused self-service request: HTTP status, OAuth-style error code, description (never a secret)."""

    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}


class SelfService:
    def __init__(self, stores: Stores, limiter: Limiter | None) -> None:
        self.stores, self.limiter = stores, limiter

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, record: PartnerRecord, client_id: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one request of ``record``'s partner: status, body and extra headers."""
        parts = path.removeprefix(PREFIX).strip("/").split("/")
        if parts == [""] and method == "GET":
            return 200, self.status(record), {}
        if len(parts) == 3 and parts[0] == "webhooks" and parts[1] in record.webhooks:
            if parts[2] == "deliveries" and method == "GET":
                return 200, self.deliveries(record, parts[1], query), {}
            if parts[2] == "replay" and method == "POST":
                return self.replay(record, parts[1], body, client_id)
        if len(parts) == 3 and parts[0] == "webhooks":
            known = ", ".join(sorted(record.webhooks)) or "none"
            raise SelfServiceError(404, "not_found", f"no webhook {parts[1]!r} (yours: {known})")
        raise SelfServiceError(404, "not_found", f"{method} {path} is not a self-service route")

    def status(self, record: PartnerRecord) -> dict[str, Any]:
        credentials = self.stores.secrets.credentials(record.key)
        document = status_json(record, active_credential(credentials))
        return {name: document[name] for name in SHOWN}

    def deliveries(self, record: PartnerRecord, webhook: str, query: dict[str, list[str]]) -> dict[str, Any]:
        status = _one(query, "status")
        if status is not None and status not in STATUSES:
            raise SelfServiceError(400, "invalid_request", f"status is one of {', '.join(STATUSES)}")
        since = _time(_one(query, "since"), "since") or clock.now() - timedelta(days=LOG_DAYS)
        limit_text = _one(query, "limit") or "100"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise SelfServiceError(400, "invalid_request", f"limit is a whole number from 1 to {MAX_LIMIT}")
        found = self.stores.journal.attempts(record.key, webhook=webhook, status=status, since=since.isoformat(),
                                             limit=int(limit_text))  # fmt: skip
        return {"deliveries": [attempt_json(attempt) for attempt in found]}

    def replay(
        self, record: PartnerRecord, webhook: str, body: bytes, client_id: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            asked = json.loads(body or b"{}")
        except ValueError as error:
            raise SelfServiceError(400, "invalid_request", "the body is JSON: {\"since\": ISO 8601, ...}") from error
        if not isinstance(asked, dict) or not isinstance(asked.get("since"), str):
            raise SelfServiceError(400, "invalid_request", 'give {"since": ISO 8601, "until": ISO 8601 (optional)}')
        include = asked.get("includeDelivered", False)
        if not isinstance(include, bool):
            raise SelfServiceError(400, "invalid_request", "includeDelivered is true or false")
        now = clock.now()
        try:
            since, until = window(_time(asked["since"], "since") or now, _time(asked.get("until"), "until"), now=now,
                                  longest=LONGEST_REPLAY)  # fmt: skip
        except UsageError as error:
            raise SelfServiceError(400, "invalid_request", str(error)) from error
        headers = {}
        if self.limiter is not None:
            verdict = self.limiter.spend(f"replay|{record.key}", REPLAY_POLICY)
            headers = verdict.headers()
            if not verdict.allowed:
                raise SelfServiceError(429, "rate_limited", "too many replays; try again later", headers)
        journal = Journal(self.stores, actor=f"partner:{client_id}")
        try:
            done = replay(self.stores, journal, record.key, since=since, until=until, webhook=webhook,
                          include_delivered=include, now=now)  # fmt: skip
        except (InvalidState, NotFound) as error:
            raise SelfServiceError(409, "webhook_unavailable", str(error), headers) from error
        return 202, {"webhook": webhook, "since": done.since, "until": done.until, "replayed": done.count}, headers


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if values is not None and len(values) > 1:
        raise SelfServiceError(400, "invalid_request", f"{name} is given once")
    return values[0] if values else None


def _time(text: Any, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as error:
        raise SelfServiceError(400, "invalid_request", f"{name} is an ISO 8601 time, e.g. 2026-12-01T08:00:00Z") \
            from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.now().tzinfo)
