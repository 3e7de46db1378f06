"""What each console page shows, as plain data (also its JSON answer), read from the stores for one viewer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reconciler.console.viewers import Viewer
from reconciler.credentials import active_credential
from reconciler.engine import review
from reconciler.engine.executor import APPROVERS
from reconciler.engine.reconciler import LAST_RECONCILE
from reconciler.engine.report import approval_chain, classifications, credential_evidence, noting_approvals
from reconciler.engine.status import scope_usage_json
from reconciler.stores import Stores
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Health, Phase, WebhookState

__all__ = ["AUDIT_PAGE", "BADGES", "CHART_DAYS", "NotVisible", "partner_page", "partners_page", "pending_page",
           "reconciled"]

CHART_DAYS = 14
AUDIT_PAGE = 50


class NotVisible(Exception):
    """The partner does not exist, or not for this viewer (both answer alike: 403 tells nothing more)."""


def reconciled(stores: Stores) -> dict[str, Any]:
    """When the last apply ran and at which revision: the pages show the state as of then."""
    last = stores.journal.setting(LAST_RECONCILE) or {}
    return {"time": last.get("time"), "revision": last.get("revision")}


def attention(row: dict[str, Any]) -> int:
    """Lower first: what needs someone's attention comes first."""
    if row["health"] == Health.DEGRADED or row["reviewOverdue"]:
        return 0
    if row["phase"] in (Phase.SUSPENDED, Phase.PENDING_APPROVAL, Phase.PROVISIONING, Phase.AWAITING_HANDSHAKE):
        return 1
    if row["phase"] == Phase.DECOMMISSIONED:
        return 3
    return 2


def partners_page(stores: Stores, viewer: Viewer, filters: dict[str, str], now: datetime) -> dict[str, Any]:
    records = stores.partners.partners()
    visible = {key: record for key, record in records.items() if viewer.sees(record.tenant)}
    credentials = stores.secrets.live_credentials()
    rows = []
    for key, record in visible.items():
        if any(value and getattr(record, name) != value for name, value in (
                ("tenant", filters.get("tenant")), ("phase", filters.get("phase")), ("health", filters.get("health")))):
            continue  # fmt: skip
        active = active_credential(credentials.get(key, []))
        due = review.due_at(record)
        rows.append({
            "partner": key, "tenant": record.tenant,
            "displayName": record.spec.get("organization", {}).get("displayName"),
            "phase": record.phase, "health": record.health, "lastSuccessfulSync": record.last_successful_sync,
            "rotatesAt": active.rotates_at(record.rotation_days).isoformat() if active is not None else None,
            "reviewDueAt": due.isoformat() if due else None, "reviewOverdue": review.overdue(record, now),
            "webhooks": [{"name": name, "state": hook.state} for name, hook in sorted(record.webhooks.items())],
        })  # fmt: skip
    rows.sort(key=lambda row: (attention(row), row["partner"]))
    return {
        "reconciled": reconciled(stores),
        "viewer": viewer.email,
        "filters": {name: filters.get(name) or None for name in ("tenant", "phase", "health")},
        "choices": {"tenant": sorted({record.tenant for record in visible.values()}),
                    "phase": [str(phase) for phase in Phase], "health": [str(health) for health in Health]},
        "partners": rows,
    }  # fmt: skip


def partner_page(stores: Stores, viewer: Viewer, key: str, now: datetime, page: int = 1) -> dict[str, Any]:
    record = stores.partners.partner(key)
    if record is None or not viewer.sees(record.tenant):
        raise NotVisible(key)
    active = active_credential(stores.secrets.credentials(key))
    by_scope = classifications(stores.journal.setting("catalog"))
    usage = stores.journal.scope_usage([key]).get(key, {})
    approvals: dict[str, dict[str, dict[str, Any]]] = {key: {}}
    trail = [entry for entry in noting_approvals(stores.journal.audit_entries(), approvals)
             if isinstance(entry, dict) and entry.get("partner") == key]  # fmt: skip
    trail.reverse()  # newest first
    pages = max(1, -(-len(trail) // AUDIT_PAGE))
    page = min(max(1, page), pages)
    credential = credential_evidence(record, active)
    if credential is not None and credential.get("issuedAt"):
        credential["ageDays"] = (now - datetime.fromisoformat(credential["issuedAt"])).days
    due, last = review.due_at(record), review.reviewed_at(record)
    chart = _chart(stores, key, record, now)
    return {
        "reconciled": reconciled(stores),
        "viewer": viewer.email,
        "partner": key,
        "displayName": record.spec.get("organization", {}).get("displayName"),
        "organizationType": record.spec.get("organization", {}).get("type"),
        "phase": record.phase,
        "health": record.health,
        "conditions": record.conditions,
        "approvals": approval_chain(record, list(approvals[key].values())),
        "scopes": [{**scope, "classification": by_scope.get(scope["name"])}
                   for scope in scope_usage_json(record, usage, now=now)],
        "credential": credential,
        "accessReview": {"lastReviewedAt": last.isoformat() if last else None,
                         "dueAt": due.isoformat() if due else None,
                         "overdue": review.overdue(record, now)},
        "lastSuccessfulSync": record.last_successful_sync,
        "webhooks": [{"name": name, "url": hook.url, "state": hook.state,
                      "consecutiveFailures": hook.consecutive_failures, "lastError": hook.last_error,
                      "days": chart.get(name, [])} for name, hook in sorted(record.webhooks.items())],
        "audit": {"page": page, "pages": pages, "total": len(trail),
                  "entries": [{name: entry.get(name) for name in ("seq", "time", "actor", "event", "details")}
                              for entry in trail[(page - 1) * AUDIT_PAGE : page * AUDIT_PAGE]]},
    }


def _chart(stores: Stores, key: str, record: PartnerRecord, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per webhook, the last CHART_DAYS days (oldest first) with their delivered and failed attempts."""
    first = (now - timedelta(days=CHART_DAYS - 1)).date()
    days = [(first + timedelta(days=offset)).isoformat() for offset in range(CHART_DAYS)]
    counts = stores.journal.attempt_days(key, f"{days[0]}T00:00:00+00:00")
    return {name: [{"day": day, "delivered": counts.get((name, day, "delivered"), 0),
                    "failed": counts.get((name, day, "failed"), 0)} for day in days]
            for name in record.webhooks}  # fmt: skip


def pending_page(stores: Stores, viewer: Viewer) -> dict[str, Any]:
    """What the last reconcile left blocked, and who may approve it (the tenant's approvers)."""
    last = stores.journal.setting(LAST_RECONCILE) or {}
    approvers: dict[str, list[dict[str, str]]] = stores.journal.setting(APPROVERS) or {}
    blocked = []
    for item in last.get("blocked", []):
        tenant = str(item.get("partner", "")).split("/", 1)[0]
        if viewer.sees(tenant):
            people = [{"name": p.get("name"), "email": p.get("email"), "github": p.get("github")}
                      for p in approvers.get(tenant, [])]  # fmt: skip
            blocked.append({**item, "tenant": tenant, "approvers": people})
    return {"reconciled": reconciled(stores), "viewer": viewer.email, "blocked": blocked}


# Used by the templates: the badge colour of a phase or health, and of a webhook state.
BADGES = {
    Health.HEALTHY: "ok", Health.DEGRADED: "bad", Health.UNKNOWN: "muted",
    WebhookState.ACTIVE: "ok", WebhookState.FAILING: "warn", WebhookState.FLAGGED: "bad",
    WebhookState.DEACTIVATED: "bad",
}  # fmt: skip
