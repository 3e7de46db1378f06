"""Phase, health and conditions of a partner, computed in one place from its record (DESIGN §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.credentials import Credential, client_id_for
from reconciler.engine import review
from reconciler.engine import usage as scope_use
from reconciler.manifests.models import client_authentication_of
from reconciler.stores.records import PartnerRecord, ScopeUse, WebhookRecord
from reconciler.vocabulary import Event, Health, Phase, WebhookState

__all__ = [
    "CONDITIONS",
    "deactivate",
    "derive",
    "inline_key_ids",
    "keys_in_use",
    "note_key_seen",
    "scope_usage_json",
    "status_json",
    "webhook_result",
]

PRIVATE_KEY_JWT = "private_key_jwt"

CONDITIONS = (
    "Approved",
    "CredentialsIssued",
    "WebhooksRegistered",
    "HandshakeVerified",
    "WebhooksReachable",
    "AccessReviewed",
    "Ready",
)


def derive(record: PartnerRecord, active: Credential | None, *, webhooks_held: set[str], now: datetime) -> None:
    """Set ``record``'s phase, health and conditions from what is true of it now.

    A partner with ``private_key_jwt`` has no client secret: its credentials are its public keys, issued
    by the partner itself, so ``active`` is ignored for it (the planner revokes any it still has)."""
    jwt = client_authentication_of(record.spec) == PRIVATE_KEY_JWT
    if jwt:
        active = None
    overdue = review.overdue(record, now)
    record.phase, record.health = _phase_and_health(record, active, jwt=jwt, review_overdue=overdue)
    due = review.due_at(record)
    webhook_states = [hook.state for hook in record.webhooks.values()]
    missing_hooks = sorted(set(record.webhooks) - webhooks_held)
    unreachable = [name for name, hook in sorted(record.webhooks.items()) if hook.state != WebhookState.ACTIVE]
    values = {
        "Approved": _condition(record.approval is not None, "Approved", "NotApproved",
                               _approval_message(record.approval)),
        "CredentialsIssued": _condition(True, "PrivateKeyJwt", "", _keys_message(record)) if jwt
        else _condition(active is not None, "Issued", "NoActiveCredential",
                        f"client {active.client_id}, generation {active.generation}" if active
                        else "no active client credential"),
        "WebhooksRegistered": _condition(not missing_hooks, "Registered", "SigningSecretMissing",
                                         f"{len(record.webhooks)} webhook(s)" if not missing_hooks
                                         else f"missing signing secret: {', '.join(missing_hooks)}"),
        "HandshakeVerified": _condition(record.handshake_at is not None, "PingReceived", "AwaitingHandshake",
                                        f"last ping {record.handshake_at}" if record.handshake_at
                                        else "the partner has not called /v1/ping with its credentials yet"),
        "WebhooksReachable": _condition(not unreachable, "Reachable" if webhook_states else "NoWebhooks",
                                        "Unreachable",
                                        f"not active: {', '.join(unreachable)}" if unreachable else ""),
        "AccessReviewed": _condition(not overdue, "Reviewed", "ReviewOverdue",
                                     f"last reviewed {review.reviewed_at(record)}, next review due {due}" if due
                                     else "no approved review yet"),
        "Ready": _condition(record.phase == Phase.ACTIVE and record.health == Health.HEALTHY, "Ready", record.phase,
                            f"{record.phase}/{record.health}"),
    }  # fmt: skip
    previous = {condition["type"]: condition for condition in record.conditions}
    conditions = []
    for kind in CONDITIONS:
        status, reason, message = values[kind]
        old = previous.get(kind)
        since = old["lastTransitionTime"] if old and old["status"] == status else now.isoformat()
        conditions.append(
            {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
        )
    record.conditions = conditions


def _phase_and_health(
    record: PartnerRecord, active: Credential | None, *, jwt: bool, review_overdue: bool
) -> tuple[Phase, Health]:
    if record.phase in (Phase.DECOMMISSIONED, Phase.PENDING_APPROVAL):
        return record.phase, Health.UNKNOWN
    if record.suspended:
        return Phase.SUSPENDED, Health.UNKNOWN
    if active is None and not jwt:
        return Phase.PROVISIONING, Health.UNKNOWN
    if record.handshake_at is None:
        return Phase.AWAITING_HANDSHAKE, Health.UNKNOWN
    failing = any(hook.state != WebhookState.ACTIVE for hook in record.webhooks.values())
    return Phase.ACTIVE, Health.DEGRADED if failing or review_overdue else Health.HEALTHY


def _keys_message(record: PartnerRecord) -> str:
    client = client_id_for(record.key)
    uri = record.spec.get("auth", {}).get("jwksUri")
    kids = keys_in_use(record)
    listed = f"keys {', '.join(kids)}" if kids else "no key seen yet"
    where = f" at {uri}" if uri else ""
    return f"client {client} authenticates with private_key_jwt; {listed}{where}"


def inline_key_ids(spec: dict[str, Any]) -> list[str]:
    """The key ids of a spec's inline ``auth.jwks`` (validation gives every key a unique kid), in order."""
    jwks = spec.get("auth", {}).get("jwks")
    keys = jwks.get("keys", []) if isinstance(jwks, dict) else []
    return [str(key["kid"]) for key in keys if isinstance(key, dict) and key.get("kid") is not None]


def keys_in_use(record: PartnerRecord) -> list[str]:
    """A private_key_jwt partner's key ids: its manifest's, or those seen at its ``jwksUri``."""
    if record.spec.get("auth", {}).get("jwks") is not None:
        return inline_key_ids(record.spec)
    return sorted(record.keys_first_seen)


def note_key_seen(record: PartnerRecord, kid: str | None, now: datetime) -> bool:
    """The gateway verified an assertion signed with ``kid`` from a ``jwksUri``: note when the key was first
    seen. True when ``record`` changed (the gateway then records it); a manifest's keys are noted on apply."""
    auth = record.spec.get("auth", {})
    if kid is None or client_authentication_of(record.spec) != PRIVATE_KEY_JWT or auth.get("jwks") is not None:
        return False
    if kid in record.keys_first_seen:
        return False
    record.keys_first_seen[kid] = now.isoformat()
    return True


def _condition(ok: bool, reason_true: str, reason_false: str, message: str) -> tuple[str, str, str]:
    return ("True", reason_true, message) if ok else ("False", reason_false, message)


def _approval_message(approval: dict[str, Any] | None) -> str:
    if approval is None:
        return "no approved version yet"
    who = approval.get("approver") or "nobody (--approval none)"
    return f"commit {str(approval.get('commit'))[:12]} approved by {who}"


def status_json(record: PartnerRecord, active: Credential | None, rotation_days: int | None = None) -> dict[str, Any]:
    """One partner's entry of ``status --output json`` (DESIGN §11)."""
    days = rotation_days if rotation_days is not None else record.rotation_days
    return {
        "partner": record.key,
        "phase": record.phase,
        "scopes": record.scopes,
        "health": record.health,
        "conditions": record.conditions,
        "appliedRevision": record.revision,
        "approval": record.approval,
        "credential": _credential_json(record, active, days),
        "webhooks": [
            {"name": hook.name, "url": hook.url, "state": hook.state, "consecutiveFailures": hook.consecutive_failures}
            for _, hook in sorted(record.webhooks.items())
        ],
        "lastSuccessfulSync": record.last_successful_sync,
    }


def scope_usage_json(record: PartnerRecord, usage: dict[str, ScopeUse], *, now: datetime) -> list[dict[str, Any]]:
    """``scopeUsage`` of status (DESIGN §12): each approved scope's last use at the gateway and whether it is
    unused (granted for the tenant's ``unusedScopeDays`` and not used in that time); ``usage``: the partner's."""
    since = scope_use.granted_since(record)
    unused: set[str] = set()
    if since is not None:
        unused = set(scope_use.unused_scopes(record.scopes, usage, granted_since=since, now=now,
                                             unused_days=scope_use.unused_days(record)))  # fmt: skip
    entries = []
    for name in record.scopes:
        moment = scope_use.last_used(usage.get(name))
        entries.append({"name": name, "lastUsed": moment.isoformat() if moment else None, "unused": name in unused})
    return entries


def _credential_json(record: PartnerRecord, active: Credential | None, rotation_days: int) -> dict[str, Any] | None:
    """``credential`` of status: the client secret's dates, or a private_key_jwt partner's key ids (DESIGN §6)."""
    if client_authentication_of(record.spec) == PRIVATE_KEY_JWT:
        if not record.usable:
            return None
        kids = keys_in_use(record)
        credential = {"clientId": client_id_for(record.key), "issuedAt": None, "rotatesAt": None,
                      "method": PRIVATE_KEY_JWT, "keyIds": kids,
                      "keysFirstSeen": {kid: record.keys_first_seen.get(kid) for kid in kids}}  # fmt: skip
        uri = record.spec.get("auth", {}).get("jwksUri")
        return {**credential, "jwksUri": uri} if uri else credential
    if active is None:
        return None
    return {
        "clientId": active.client_id,
        "issuedAt": active.issued_at.isoformat(),
        "rotatesAt": active.rotates_at(rotation_days).isoformat(),
        "method": "client_secret",
        "keyIds": [],
    }


def webhook_result(
    record: PartnerRecord, hook: WebhookRecord, *, ok: bool, counts: bool, error: str | None, now: datetime
) -> list[tuple[Event, dict[str, Any]]]:
    """LOG-01: move ``hook`` after a ping or delivery; the audit events (name, details) it causes.

    From the first counted failure (5xx, timeout, unreachable) the webhook is ``failing`` (the partner
    DEGRADED); at the tenant's ``maxConsecutiveFailures`` it is ``flagged`` or ``deactivated``. A
    success brings it back to ``active``. Failures that do not count (4xx, 3xx) are only recorded.
    """
    if ok:
        events = []
        if hook.state != WebhookState.ACTIVE:
            events.append((Event.WEBHOOK_RECOVERED, {"name": hook.name, "code": "LOG-01"}))
        hook.state, hook.consecutive_failures, hook.last_error = WebhookState.ACTIVE, 0, None
        record.last_successful_sync = now.isoformat()
        return events
    hook.last_error = error
    if not counts:
        return []
    hook.consecutive_failures += 1
    details = {"name": hook.name, "code": "LOG-01", "failures": hook.consecutive_failures, "error": error}
    if hook.consecutive_failures >= record.max_failures and hook.state in (WebhookState.ACTIVE, WebhookState.FAILING):
        if record.on_failure == "deactivate":
            hook.state = WebhookState.DEACTIVATED
            return [(Event.WEBHOOK_DEACTIVATED, details)]
        hook.state = WebhookState.FLAGGED
        return [(Event.WEBHOOK_FLAGGED, details)]
    if hook.state == WebhookState.ACTIVE:
        hook.state = WebhookState.FAILING
        return [(Event.WEBHOOK_FAILING, details)]
    return []


def deactivate(record: PartnerRecord, hook: WebhookRecord, reason: str) -> list[tuple[Event, dict[str, Any]]]:
    """A webhook the partner has retired (410 Gone): deactivated until a ping succeeds again."""
    if hook.state == WebhookState.DEACTIVATED:
        return []
    hook.state, hook.last_error = WebhookState.DEACTIVATED, reason
    return [(Event.WEBHOOK_DEACTIVATED, {"name": hook.name, "code": "LOG-01", "error": reason})]
