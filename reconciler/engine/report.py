"""The compliance report (DESIGN §12): per partner, the evidence an auditor asks for, from stores and audit chain.

Built in one read of each store (records, credentials, usage counters, delivery counts) and one pass over the
audit log, which is verified in the same pass; so a report over 10,000 partners costs about what a full plan
does. The same revision, audit head and clock give the same document.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from reconciler.credentials import Credential, active_credential, client_id_for
from reconciler.engine import review
from reconciler.engine.status import PRIVATE_KEY_JWT, keys_in_use, scope_usage_json
from reconciler.manifests.models import client_authentication_of
from reconciler.stores import Stores
from reconciler.stores.audit import verify
from reconciler.stores.records import PartnerRecord, ScopeUse
from reconciler.vocabulary import Event

__all__ = ["APPROVAL_FIELDS", "DELIVERY_DAYS", "approval_chain", "build_report", "classifications",
           "credential_evidence", "noting_approvals"]

DELIVERY_DAYS = 30  # the delivery counts' window, the delivery log's (DESIGN §8)


def build_report(stores: Stores, *, revision: str | None, now: datetime, tenant: str | None = None) -> dict[str, Any]:
    """The report's JSON document (DESIGN §11); ``tenant``: that tenant's partners only."""
    records = {key: record for key, record in stores.partners.partners().items()
               if tenant is None or record.tenant == tenant}  # fmt: skip
    keys = sorted(records)
    credentials = stores.secrets.live_credentials()
    usage = stores.journal.scope_usage(keys) if keys else {}
    deliveries = stores.journal.attempt_counts((now - timedelta(days=DELIVERY_DAYS)).isoformat())
    by_scope = classifications(stores.journal.setting("catalog"))
    head = stores.journal.audit_head()
    approvals: dict[str, dict[str, dict[str, Any]]] = {key: {} for key in keys}
    entries = noting_approvals(stores.journal.audit_entries(), approvals)
    verdict = verify(entries, head)
    for _ in entries:  # past a broken entry the rest is still read for its approvals (the report says it is broken)
        pass
    partners = []
    for key in keys:
        record = records[key]
        partners.append(_partner(record, active_credential(credentials.get(key, [])), usage.get(key, {}),
                                 deliveries, by_scope, list(approvals[key].values()), now))  # fmt: skip
    return {
        "generatedAt": now.isoformat(),
        "revision": revision,
        "tenant": tenant,
        "auditHead": {"seq": head.seq, "hash": head.hash, "verified": verdict.intact,
                      "problem": verdict.problem, "firstBrokenSeq": verdict.first_broken_seq},
        "partners": partners,
    }


def noting_approvals(entries: Iterator[Any], approvals: dict[str, dict[str, dict[str, Any]]]) -> Iterator[Any]:
    """The audit entries as read, noting each partner's approvals (by commit, in order) as they pass."""
    for entry in entries:
        if isinstance(entry, dict) and entry.get("event") == Event.APPROVAL_RECORDED:
            chain = approvals.get(str(entry.get("partner")))
            details = entry.get("details")
            if chain is not None and isinstance(details, dict) and details.get("commit"):
                chain.setdefault(str(details["commit"]), {name: details.get(name) for name in APPROVAL_FIELDS})
        yield entry


APPROVAL_FIELDS = ("commit", "approver", "policyDocument", "approvedAt")


def _partner(
    record: PartnerRecord,
    active: Credential | None,
    usage: dict[str, ScopeUse],
    deliveries: dict[tuple[str, str], dict[str, int]],
    by_scope: dict[str, str],
    approvals: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    organization = record.spec.get("organization", {})
    due = review.due_at(record)
    last_review = review.reviewed_at(record)
    return {
        "partner": record.key,
        "organization": {"displayName": organization.get("displayName"), "type": organization.get("type")},
        "phase": record.phase,
        "health": record.health,
        "approvals": approval_chain(record, approvals),
        "scopes": [{**scope, "classification": by_scope.get(scope["name"])}
                   for scope in scope_usage_json(record, usage, now=now)],
        "credential": credential_evidence(record, active),
        "accessReview": {
            "lastReviewedAt": last_review.isoformat() if last_review else None,
            "dueAt": due.isoformat() if due else None,
            "overdue": review.overdue(record, now),
        },
        "webhooks": [
            {"name": name, "state": hook.state,
             "delivered30d": deliveries.get((record.key, name), {}).get("delivered", 0),
             "failed30d": deliveries.get((record.key, name), {}).get("failed", 0)}
            for name, hook in sorted(record.webhooks.items())
        ],
        "lastSuccessfulSync": record.last_successful_sync,
    }


def approval_chain(record: PartnerRecord, audited: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partner's approvals as the audit log recorded them; the applied one alone when the log has none."""
    if audited or not record.approval:
        return audited
    return [{name: record.approval.get(name) for name in APPROVAL_FIELDS}]


def credential_evidence(record: PartnerRecord, active: Credential | None) -> dict[str, Any] | None:
    """How the partner authenticates, since when, and its rotations (or, with private_key_jwt, its key ids)."""
    if client_authentication_of(record.spec) == PRIVATE_KEY_JWT:
        kids = keys_in_use(record)
        return {"method": PRIVATE_KEY_JWT, "clientId": client_id_for(record.key), "issuedAt": None,
                "lastRotatedAt": None, "rotatesAt": None, "rotations": 0, "keyIds": kids,
                "keysFirstSeen": {kid: record.keys_first_seen.get(kid) for kid in kids}}  # fmt: skip
    if active is None:
        return None
    rotated = active.generation > 1
    return {
        "method": "client_secret",
        "clientId": active.client_id,
        "issuedAt": active.issued_at.isoformat(),
        "lastRotatedAt": active.issued_at.isoformat() if rotated else None,
        "rotatesAt": active.rotates_at(record.rotation_days).isoformat(),
        "rotations": active.generation - 1,
        "keyIds": [],
    }


def classifications(catalog: Any) -> dict[str, str]:
    """Scope name -> classification, from the applied scope catalog (the journal's ``catalog`` setting)."""
    scopes = catalog.get("spec", {}).get("scopes", []) if isinstance(catalog, dict) else []
    return {str(scope.get("name")): str(scope.get("classification")) for scope in scopes if isinstance(scope, dict)}
