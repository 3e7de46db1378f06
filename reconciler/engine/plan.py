"""The planner: the actions that take live state to the desired state. Pure: no I/O, no clock.

The same inputs give the same plan, byte for byte: partners in key order, each partner's actions
in a fixed order, and nothing in a plan that depends on when it was computed beyond ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler.credentials import Credential, active_credential
from reconciler.engine.desired import DesiredPartner, DesiredState
from reconciler.manifests.models import client_authentication_of
from reconciler.stores.records import PartnerRecord, WebhookRecord
from reconciler.vocabulary import ActionName, CredentialState, Health, Phase

__all__ = ["REVIEW_OVERDUE", "Action", "LiveState", "Plan", "desired_spec", "desired_webhooks", "make_plan",
           "review_settings", "rotation_settings", "stable_until"]  # fmt: skip

# The order of a partner's actions: ActionName's own order, without the check.
ORDER = {name: index for index, name in enumerate(ActionName)}
# Why a client secret is revoked, or issued again, when the partner's client authentication changes.
METHOD_CHANGED = "client-authentication-changed"
# Why a partner is suspended when its access review is overdue and its tenant says onOverdue: suspend.
REVIEW_OVERDUE = "review-overdue"


@dataclass(frozen=True)
class Action:
    partner: str
    action: ActionName
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"partner": self.partner, "action": self.action, "reason": self.reason, "details": self.details}


@dataclass(frozen=True)
class LiveState:
    """What the stores hold now."""

    records: dict[str, PartnerRecord]
    credentials: dict[str, list[Credential]]  # live (active and previous) only
    webhook_secrets: dict[str, set[str]]


@dataclass
class Plan:
    revision: str
    actions: list[Action] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    blocked: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "actions": [action.to_json() for action in self.actions],
            "checks": [{"partner": key, "action": ActionName.CHECK_CONNECTIVITY} for key in self.checks],
            "blocked": self.blocked,
        }


def make_plan(desired: DesiredState, live: LiveState, *, now: datetime, check_interval: timedelta) -> Plan:
    plan = Plan(revision=desired.revision)
    keys = sorted(set(desired.partners) | set(desired.deleted))
    for key in keys:
        record = live.records.get(key)
        credentials = live.credentials.get(key, [])
        if key in desired.deleted:
            actions = _decommission(key, record, credentials)
        else:
            actions = _converge(desired.partners[key], record, credentials, live.webhook_secrets.get(key, set()), now)
        actions.sort(key=lambda action: ORDER[action.action])
        plan.actions.extend(actions)
        if key in desired.partners and _check_due(desired.partners[key], record, actions, now, check_interval):
            plan.checks.append(key)
    plan.blocked = [
        {"partner": blocked.key, "reason": blocked.reason, "message": blocked.message}
        for blocked in sorted(desired.blocked.values(), key=lambda blocked: blocked.key)
    ]
    return plan


def stable_until(desired: DesiredState, live: LiveState, *, now: datetime, check_interval: timedelta) -> datetime:
    """The earliest moment a plan over unchanged inputs could differ: a rotation or overlap falling due,
    a connectivity check falling due, or the date changing (legal bases and validation use today)."""
    moments = [datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)]
    for key, partner in desired.partners.items():
        record = live.records.get(key)
        rotation_days, _ = rotation_settings(partner, record)
        for credential in live.credentials.get(key, []):
            if credential.state == CredentialState.ACTIVE:
                moments.append(credential.rotates_at(rotation_days))
            elif credential.revoke_after is not None:
                moments.append(credential.revoke_after)
        if record is not None and record.last_check_at is not None:
            moments.append(datetime.fromisoformat(record.last_check_at) + check_interval)
        if (review_due := _review_due(partner, record)) > now:  # one already overdue is audited, and stays so
            moments.append(review_due)
    return min(moments)


def desired_spec(partner: DesiredPartner, record: PartnerRecord | None) -> dict[str, Any]:
    """The approved spec: from the manifest when it was read, else the applied one."""
    spec = partner.spec()
    if spec is not None:
        return spec
    return record.spec if record is not None else {}


def desired_webhooks(spec: dict[str, Any]) -> dict[str, WebhookRecord]:
    return {
        hook["name"]: WebhookRecord(hook["name"], hook["url"], list(hook["events"]), hook.get("mapping"))
        for hook in spec.get("webhooks", [])
    }


def rotation_settings(partner: DesiredPartner, record: PartnerRecord | None) -> tuple[int, int]:
    if partner.policy is not None:
        return partner.policy.spec.credentials.rotationDays, partner.policy.spec.credentials.overlapDays
    if record is not None:
        return record.rotation_days, record.overlap_days
    return 90, 7


def review_settings(partner: DesiredPartner, record: PartnerRecord | None) -> tuple[int, str]:
    """The tenant's reviewDays and onOverdue for ``partner`` (DESIGN §12)."""
    if partner.policy is not None:
        return partner.policy.spec.accessReview.reviewDays, partner.policy.spec.accessReview.onOverdue
    if record is not None:
        return record.review_days, record.on_overdue
    return 90, "flag"


def _review_due(partner: DesiredPartner, record: PartnerRecord | None) -> datetime:
    """When the approved version's review falls due: its approval is the last review of the partner's access."""
    days, _ = review_settings(partner, record)
    return datetime.fromisoformat(partner.approval.approved_at) + timedelta(days=days)


def _converge(
    partner: DesiredPartner,
    record: PartnerRecord | None,
    credentials: list[Credential],
    secrets_held: set[str],
    now: datetime,
) -> list[Action]:
    key = partner.key
    spec = desired_spec(partner, record)
    suspended = bool(spec.get("suspended", False))
    # onOverdue: suspend holds the partner suspended until an approved review (a newer approval of its file).
    overdue = not suspended and review_settings(partner, record)[1] == "suspend" and now >= _review_due(partner, record)
    why = REVIEW_OVERDUE if overdue else "suspended"
    suspended = suspended or overdue
    actions: list[Action] = []
    new = record is None or record.decommissioned or record.blob is None
    active = active_credential(credentials)
    previous = [credential for credential in credentials if credential.state == CredentialState.PREVIOUS]

    method = client_authentication_of(spec)
    applied_method = client_authentication_of(record.spec) if record is not None and not new else method

    if new:
        actions.append(Action(key, ActionName.REGISTER_PARTNER, "new-partner", {"scopes": spec.get("scopes", [])}))
    elif record is not None and partner.read:
        changed = _changed_fields(record.spec, spec)
        if changed:
            details: dict[str, Any] = {"changed": changed}
            if applied_method != method:
                details["clientAuthentication"] = {"from": applied_method, "to": method}
            actions.append(Action(key, ActionName.UPDATE_PARTNER, "spec-changed", details))
        elif record.suspended and not suspended:
            actions.append(Action(key, ActionName.UPDATE_PARTNER, "resumed", {"changed": ["suspended"]}))

    if suspended:
        if new or (record is not None and not record.suspended):
            actions.append(Action(key, ActionName.SUSPEND_PARTNER, why, {}))
        actions.extend(
            Action(key, ActionName.REVOKE_CREDENTIAL, why, {"credentialId": credential.credential_id})
            for credential in credentials
        )
    elif method == "private_key_jwt":
        # No secret exists for such a partner (DESIGN §6): one left from client_secret is revoked at once.
        actions.extend(
            Action(key, ActionName.REVOKE_CREDENTIAL, METHOD_CHANGED, {"credentialId": credential.credential_id,
                                                                       "clientAuthentication": method})
            for credential in credentials
        )  # fmt: skip
    else:
        rotation_days, _ = rotation_settings(partner, record)
        if active is None:
            reason = _issue_reason(new, record, applied_method)
            details = {} if reason != "drift" else {"problem": "no active credential in the secret store"}
            actions.append(Action(key, ActionName.ISSUE_CREDENTIAL, reason, details))
        elif active.due_for_rotation(now, rotation_days):
            due = active.rotates_at(rotation_days)
            actions.append(
                Action(key, ActionName.ROTATE_CREDENTIAL, "rotation-due", {"credentialId": active.credential_id,
                                                                  "dueAt": due.isoformat()})
            )  # fmt: skip
        actions.extend(
            Action(key, ActionName.REVOKE_CREDENTIAL, "overlap-ended", {"credentialId": credential.credential_id})
            for credential in previous
            if credential.overlap_over(now)
        )

    wanted = desired_webhooks(spec)
    applied = {} if new or record is None else record.webhooks
    for name, hook in sorted(wanted.items()):
        if name not in applied:
            actions.append(Action(key, ActionName.REGISTER_WEBHOOK, "webhook-added", {"name": name, "url": hook.url}))
        elif name not in secrets_held:
            actions.append(
                Action(key, ActionName.REGISTER_WEBHOOK, "drift", {"name": name, "url": hook.url,
                                                          "problem": "signing secret missing from the secret store"})
            )  # fmt: skip
        elif not applied[name].same_target(hook):
            actions.append(Action(key, ActionName.UPDATE_WEBHOOK, "webhook-changed", {"name": name, "url": hook.url}))
    for name in sorted(set(applied) - set(wanted)):
        actions.append(Action(key, ActionName.REMOVE_WEBHOOK, "webhook-removed", {"name": name}))
    return actions


def _issue_reason(new: bool, record: PartnerRecord | None, applied_method: str) -> str:
    if new or record is None:
        return "new-partner"
    if record.suspended:
        return "resumed"
    if applied_method != "client_secret":
        return METHOD_CHANGED  # back from private_key_jwt: a new secret, delivered once
    return "drift"


def _decommission(key: str, record: PartnerRecord | None, credentials: list[Credential]) -> list[Action]:
    actions = [
        Action(key, ActionName.REVOKE_CREDENTIAL, "decommissioned", {"credentialId": credential.credential_id})
        for credential in credentials
    ]
    if record is not None:
        actions.extend(
            Action(key, ActionName.REMOVE_WEBHOOK, "decommissioned", {"name": name}) for name in sorted(record.webhooks)
        )
        actions.append(Action(key, ActionName.DECOMMISSION_PARTNER, "file-deleted", {}))
    return actions


def _changed_fields(applied: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Top-level spec fields that differ; webhooks and suspension have actions of their own."""
    ignored = {"webhooks", "suspended"}
    return sorted(
        name for name in set(applied) | set(wanted) if name not in ignored and applied.get(name) != wanted.get(name)
    )


def _check_due(
    partner: DesiredPartner,
    record: PartnerRecord | None,
    actions: list[Action],
    now: datetime,
    interval: timedelta,
) -> bool:
    spec = desired_spec(partner, record)
    if spec.get("suspended"):
        return False
    if actions or record is None or record.phase != Phase.ACTIVE or record.health != Health.HEALTHY:
        return True
    if record.last_check_at is None:
        return True
    return now - datetime.fromisoformat(record.last_check_at) >= interval
