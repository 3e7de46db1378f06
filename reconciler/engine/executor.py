"""The executor: carries out a plan against the stores, one partner at a time.

For each partner it performs the secret-store operations (each atomic, each leaving an outbox
event), then writes the audit entries and commits the partner's record with the new audit head.
A process killed at any point leaves either a committed partner or one the next plan finds
unfinished: credentials are read back from the secret store, never assumed, so nothing is issued
twice and no sealed pickup is lost.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Protocol

import httpx

from reconciler.credentials import Credential, client_id_for, new_client_secret, new_webhook_secret
from reconciler.engine.audit import AuditEvent, AuditLog
from reconciler.engine.desired import DesiredPartner, DesiredState
from reconciler.engine.plan import Action, LiveState, Plan, desired_spec, desired_webhooks, rotation_settings
from reconciler.engine.status import derive, webhook_result
from reconciler.errors import StoreUnavailable
from reconciler.stores.secrets import SecretStore
from reconciler.stores.state import PartnerRecord, StateStore, WebhookRecord
from reconciler.webhooks import sender as webhooks

PING_TIMEOUT = 5.0
PING_CONCURRENCY = 16


class StopSignal(Protocol):
    """Asked between two partners: SIGTERM, or the loop's leadership lost."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class Result:
    partner: str
    action: str
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"partner": self.partner, "action": self.action, "ok": self.ok, "error": self.error}


class Executor:
    def __init__(
        self, state: StateStore, secrets: SecretStore, audit: AuditLog, *, now: datetime, actor: str = "reconciler"
    ) -> None:
        self.state = state
        self.secrets = secrets
        self.audit = audit
        self.now = now
        self.actor = actor

    # --- recovery and audit -----------------------------------------------------------------------

    def recover(self) -> None:
        """Cut uncommitted audit entries, then copy secret-store events not yet in the log."""
        self.audit.recover(self.state.audit_head())
        self.commit([], [])

    def commit(self, records: list[PartnerRecord], events: list[AuditEvent]) -> None:
        """Audit the secret store's new events and ``events``, then commit ``records`` with the head."""
        head = self.state.audit_head()
        outbox = self.secrets.events_after(head.outbox_cursor)
        entries = [
            AuditEvent(item.event, item.partner, item.details, self.actor, datetime.fromisoformat(item.time))
            for item in outbox
        ] + events
        if not entries and not records:
            return
        new_head = self.audit.append(head, entries, now=self.now)
        if outbox:
            new_head = dataclasses.replace(new_head, outbox_cursor=outbox[-1].id)
        self.state.commit(records, new_head if entries else None)
        if entries:
            self.state.announce(entries)

    # --- plan execution ---------------------------------------------------------------------------

    def run(
        self, plan: Plan, desired: DesiredState, live: LiveState, *, stop: StopSignal | None = None
    ) -> list[Result]:
        """Execute ``plan`` partner by partner; ``stop`` ends it between two partners (SIGTERM)."""
        results: list[Result] = []
        for key, grouped in groupby(plan.actions, key=lambda action: action.partner):
            if stop is not None and stop.is_set():
                break
            actions = list(grouped)
            record = copy.deepcopy(live.records.get(key)) or PartnerRecord(key=key, phase="PROVISIONING")
            events: list[AuditEvent] = []
            done: list[Action] = []
            partner = desired.partners.get(key)
            try:
                if partner is not None and partner.manifest is not None and actions[0].action != "register-partner":
                    self._adopt_spec(record, partner)  # the whole approved version is what gets applied
                for action in actions:
                    self._execute(action, record, partner, desired, events)
                    done.append(action)
            except StoreUnavailable:
                raise  # every partner would fail the same way; what is done is in the stores, a rerun converges
            except Exception as error:  # one failing partner never blocks the others
                message = f"{type(error).__name__}: {error}"
                results.extend(Result(key, action.action, True) for action in done)
                results.extend(Result(key, action.action, False, message) for action in actions[len(done) :])
                self._finish(record, events)
                continue
            self._finish(record, events)
            results.extend(Result(key, action.action, True) for action in actions)
        return results

    def check(self, keys: Iterable[str], *, allow_loopback: bool = False) -> list[Result]:
        """Connectivity checks: a signed ping to every webhook (in parallel), then the recorded handshake."""
        results = []
        held = self.secrets.webhook_secret_names()
        live = self.secrets.live_credentials()
        records = [record for key in keys if (record := self.state.partner(key)) is not None]
        pings = [
            (record.key, hook.name, hook.url, secret)
            for record in records
            for hook in record.webhooks.values()
            if (secret := self.secrets.webhook_secret(record.key, hook.name)) is not None  # else drift: re-registered
        ]
        with httpx.Client(timeout=PING_TIMEOUT, follow_redirects=False) as client:

            def ping(job: tuple[str, str, str, str]) -> webhooks.Delivery:
                key, name, url, secret = job
                data = {"partner": key, "webhook": name}
                return webhooks.send(url, "ping", data, secret=secret, allow_loopback=allow_loopback, client=client)

            with ThreadPoolExecutor(max_workers=PING_CONCURRENCY) as pool:
                deliveries = list(pool.map(ping, pings))
        outcomes = {(key, name): delivery for (key, name, _, _), delivery in zip(pings, deliveries, strict=True)}
        for record in records:
            events: list[AuditEvent] = []
            for hook in record.webhooks.values():
                delivery = outcomes.get((record.key, hook.name))
                if delivery is not None:
                    events.extend(self._webhook_outcome(record, hook, delivery))
            record.last_check_at = self.now.isoformat()
            derive(record, _active(live.get(record.key, [])), webhooks_held=held.get(record.key, set()), now=self.now)
            self.commit([record], events)
            ok = (record.phase, record.health) == ("ACTIVE", "HEALTHY")
            results.append(Result(record.key, "check-connectivity", ok, None if ok else _not_active_reason(record)))
        return results

    def _webhook_outcome(
        self, record: PartnerRecord, hook: WebhookRecord, delivery: webhooks.Delivery
    ) -> list[AuditEvent]:
        changes = webhook_result(record, hook, ok=delivery.ok, counts=True, error=delivery.error, now=self.now)
        if delivery.ok and changes:
            self.state.release_held(record.key, hook.name, now=self.now.timestamp())
        return [self._event(event, record.key, details) for event, details in changes]

    def housekeeping(self, desired: DesiredState, plan: Plan, records: dict[str, PartnerRecord]) -> None:
        """Record what changed without an action: new blocked partners, unchanged specs at new blobs."""
        if desired.catalog is not None and self.state.setting("catalog") != desired.catalog:
            self.state.put_setting("catalog", desired.catalog)
        acted = {action.partner for action in plan.actions}
        updates = []
        for key, blocked in desired.blocked.items():
            if blocked.never_approved and key not in records:
                pending = PartnerRecord(key=key, phase="PENDING_APPROVAL")
                derive(pending, None, webhooks_held=set(), now=self.now)
                updates.append(pending)
        for key, partner in desired.partners.items():
            record = records.get(key)
            if key in acted or partner.manifest is None or record is None or record.decommissioned:
                continue
            if (record.blob, record.context) == (partner.blob, partner.context):
                continue
            refreshed = copy.deepcopy(record)
            self._adopt_spec(refreshed, partner)
            updates.append(refreshed)
        if updates:
            self.state.commit(updates)

    # --- single actions ---------------------------------------------------------------------------

    def _execute(
        self,
        action: Action,
        record: PartnerRecord,
        partner: DesiredPartner | None,
        desired: DesiredState,
        events: list[AuditEvent],
    ) -> None:
        key, now = action.partner, self.now
        name = action.action
        if name in ("register-partner", "update-partner"):
            assert partner is not None
            self._adopt_spec(record, partner)
            if name == "register-partner":
                record.registered_at = now.isoformat()
                record.webhooks = {}
                record.handshake_at = None
                record.phase = "PROVISIONING"
            spec = record.spec
            event = "partner.registered" if name == "register-partner" else "partner.updated"
            events.append(self._event(event, key, {"revision": desired.revision, "reason": action.reason,
                                                   "scopes": spec.get("scopes", []), **action.details}))  # fmt: skip
            events.append(self._event("approval.recorded", key, record.approval or {}))
        elif name == "suspend-partner":
            record.suspended = True
            events.append(self._event("partner.suspended", key, {"revision": desired.revision}))
        elif name == "revoke-credential":
            self.secrets.revoke_credential(action.details["credentialId"], now=now, reason=action.reason)
        elif name == "issue-credential":
            assert partner is not None
            record.suspended = False
            self.secrets.issue_credential(key, client_id_for(key), new_client_secret(), now=now, reason=action.reason)
        elif name == "rotate-credential":
            assert partner is not None
            _, overlap_days = rotation_settings(partner, record)
            self.secrets.rotate_credential(
                key, new_client_secret(), now=now, overlap_until=now + timedelta(days=overlap_days)
            )
        elif name in ("register-webhook", "update-webhook"):
            assert partner is not None
            hook = desired_webhooks(desired_spec(partner, record))[action.details["name"]]
            if name == "register-webhook":
                self.secrets.put_webhook_secret(key, hook.name, new_webhook_secret(), now=now)
                hook.registered_at = now.isoformat()
            else:
                old = record.webhooks[hook.name]
                hook.registered_at, hook.state = old.registered_at, old.state
                hook.consecutive_failures = old.consecutive_failures
            record.webhooks[hook.name] = hook
            details = {"name": hook.name, "url": hook.url, "events": hook.events, "reason": action.reason}
            events.append(self._event("webhook.registered", key, details))
        elif name == "remove-webhook":
            webhook = action.details["name"]
            self.secrets.remove_webhook_secret(key, webhook)
            record.webhooks.pop(webhook, None)
            if action.reason != "decommissioned":  # partner.decommissioned says it all
                events.append(self._event("partner.updated", key, {"webhookRemoved": webhook, "reason": action.reason}))
        elif name == "decommission-partner":
            record.phase = "DECOMMISSIONED"
            record.webhooks = {}
            approval = desired.deleted.get(key)
            record.approval = approval.to_json() if approval else record.approval
            record.updated_at = now.isoformat()
            events.append(self._event("partner.decommissioned", key, {"revision": desired.revision}))
            if approval is not None:
                events.append(self._event("approval.recorded", key, approval.to_json()))
        else:  # pragma: no cover - the planner emits only the names above
            raise ValueError(f"unknown action {name}")

    def _adopt_spec(self, record: PartnerRecord, partner: DesiredPartner) -> None:
        spec = desired_spec(partner, record)
        record.spec = spec
        record.blob = partner.blob
        record.context = partner.context
        record.revision = partner.approval.commit
        record.approval = partner.approval.to_json()
        record.suspended = bool(spec.get("suspended", False))
        record.rotation_days, record.overlap_days = rotation_settings(partner, record)
        if partner.policy is not None:
            record.max_failures = partner.policy.spec.webhooks.maxConsecutiveFailures
            record.on_failure = partner.policy.spec.webhooks.onFailure
        legal = spec.get("legalBasis")
        record.legal_expires_on = legal.get("expiresOn") if isinstance(legal, dict) else None
        record.updated_at = self.now.isoformat()
        if record.phase == "DECOMMISSIONED":
            record.phase = "PROVISIONING"

    def _finish(self, record: PartnerRecord, events: list[AuditEvent]) -> None:
        held = self.secrets.webhook_secret_names().get(record.key, set())
        derive(record, _active(self.secrets.credentials(record.key)), webhooks_held=held, now=self.now)
        self.commit([record], events)

    def _event(self, event: str, partner: str, details: dict[str, Any]) -> AuditEvent:
        return AuditEvent(event, partner, details, self.actor)


def _active(credentials: list[Credential]) -> Credential | None:
    return next((credential for credential in credentials if credential.state == "active"), None)


def _not_active_reason(record: PartnerRecord) -> str:
    reasons = [f"webhook {hook.name} {hook.state}: {hook.last_error}" for hook in record.webhooks.values()
               if hook.state != "active"]  # fmt: skip
    if record.phase == "AWAITING_HANDSHAKE":
        reasons.insert(0, "awaiting handshake: the partner has not called /v1/ping yet")
    elif record.phase != "ACTIVE":
        reasons.insert(0, f"phase {record.phase}")
    return "; ".join(reasons)
