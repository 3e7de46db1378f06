"""The executor: carries out a plan against the stores, one partner at a time, through a table of handlers.

For each partner it performs the secret-store operations (each atomic, each leaving an outbox
event), then has the journal record the partner with its audit entries. A process killed at any
point leaves either a recorded partner or one the next plan finds unfinished: credentials are read
back from the secret store, never assumed, so nothing is issued twice and no sealed pickup is lost.

One partner's failure never blocks the others: its error is reported in its results (a bug, with
its traceback, goes to the log) and the next partner goes on. Only a store that cannot be used at
all (unavailable, stalled, busy) stops the run, since every partner would fail the same way.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Protocol

from reconciler.credentials import client_id_for, new_client_secret, new_webhook_secret
from reconciler.engine import review
from reconciler.engine.desired import DesiredPartner, DesiredState
from reconciler.engine.journal import Journal
from reconciler.engine.plan import REVIEW_OVERDUE, Action, Plan, desired_spec, desired_webhooks, rotation_settings
from reconciler.engine.status import inline_key_ids, webhook_result
from reconciler.errors import Busy, ReconcilerError, Stalled, StoreUnavailable
from reconciler.manifests.models import client_authentication_of
from reconciler.stores import Stores
from reconciler.stores.records import AuditEvent, PartnerRecord, WebhookRecord
from reconciler.vocabulary import ActionName, Event, Health, Phase, WebhookState

APPROVERS = "tenant-approvers"  # the setting the console reads: tenant -> its approvers

__all__ = ["APPROVERS", "Executor", "PingOutcome", "PingTarget", "Pinger", "Result", "StopSignal"]

log = logging.getLogger("partnerctl")

# A store in this state fails every partner alike: stop the run instead of failing each one.
STOPS_THE_RUN = (StoreUnavailable, Stalled, Busy)


class StopSignal(Protocol):
    """Asked between two partners: SIGTERM, or the loop's leadership lost."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class PingTarget:
    """One webhook to ping in a connectivity check."""

    partner: str
    webhook: str
    url: str
    secrets: tuple[str, ...]  # to sign with: two during a secret rotation's overlap


class PingOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def error(self) -> str | None: ...


class Pinger(Protocol):
    """Sends the signed ``ping`` event of connectivity checks (the webhook sender, in parallel)."""

    def ping(self, targets: Sequence[PingTarget]) -> Sequence[PingOutcome]:
        """One outcome per target, in order."""


@dataclass(frozen=True)
class Result:
    partner: str
    action: str
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"partner": self.partner, "action": self.action, "ok": self.ok, "error": self.error}


@dataclass
class _Step:
    """What a handler works on: the partner's record as it will be recorded, and the events to audit."""

    action: Action
    record: PartnerRecord
    partner: DesiredPartner | None
    desired: DesiredState
    events: list[AuditEvent] = field(default_factory=list)


# Partners checked (loaded, pinged, recorded) together: enough for the pings' parallelism, and memory stays flat.
CHECK_CHUNK = 500


class Executor:
    def __init__(self, stores: Stores, journal: Journal, *, now: datetime, pinger: Pinger | None = None) -> None:
        self.stores = stores
        self.secrets = stores.secrets
        self.journal = journal
        self.now = now
        self.pinger = pinger
        self._handlers: dict[ActionName, Callable[[_Step], None]] = {
            ActionName.REGISTER_PARTNER: self._register_partner,
            ActionName.UPDATE_PARTNER: self._update_partner,
            ActionName.SUSPEND_PARTNER: self._suspend_partner,
            ActionName.REVOKE_CREDENTIAL: self._revoke_credential,
            ActionName.ISSUE_CREDENTIAL: self._issue_credential,
            ActionName.ROTATE_CREDENTIAL: self._rotate_credential,
            ActionName.REGISTER_WEBHOOK: self._register_webhook,
            ActionName.UPDATE_WEBHOOK: self._update_webhook,
            ActionName.REMOVE_WEBHOOK: self._remove_webhook,
            ActionName.DECOMMISSION_PARTNER: self._decommission_partner,
        }

    # --- plan execution ---------------------------------------------------------------------------

    def run(
        self, plan: Plan, desired: DesiredState, records: dict[str, PartnerRecord], *, stop: StopSignal | None = None
    ) -> list[Result]:
        """Execute ``plan`` partner by partner; ``stop`` ends it between two partners (SIGTERM)."""
        results: list[Result] = []
        for key, grouped in groupby(plan.actions, key=lambda action: action.partner):
            if stop is not None and stop.is_set():
                break
            results.extend(self._apply_partner(key, list(grouped), desired, records.get(key)))
        return results

    def _apply_partner(
        self, key: str, actions: list[Action], desired: DesiredState, live: PartnerRecord | None
    ) -> list[Result]:
        record = copy.deepcopy(live) or PartnerRecord(key=key, phase=Phase.PROVISIONING)
        partner = desired.partners.get(key)
        events: list[AuditEvent] = []
        done = 0
        try:
            registers = actions[0].action == ActionName.REGISTER_PARTNER
            if partner is not None and partner.read and not registers:
                events += self._adopt_spec(record, partner)  # the whole approved version is what gets applied
            for action in actions:
                step = _Step(action, record, partner, desired, events)
                self._handlers[action.action](step)
                done += 1
        except STOPS_THE_RUN:
            raise  # what is done is in the stores; a rerun converges
        except Exception as error:  # one failing partner never blocks the others
            if isinstance(error, ReconcilerError):
                message = f"{type(error).__name__}: {error}"
            else:  # a bug: its traceback goes to the log, the user gets one line
                log.exception("%s of %s failed unexpectedly", actions[done].action, key)
                message = f"internal error ({type(error).__name__}); the traceback is in the log"
            self.journal.record([record], events, now=self.now)
            return [Result(key, action.action, True) for action in actions[:done]] + [
                Result(key, action.action, False, message) for action in actions[done:]
            ]
        self.journal.record([record], events, now=self.now)
        return [Result(key, action.action, True) for action in actions]

    # --- connectivity checks ----------------------------------------------------------------------

    def check(self, keys: Iterable[str]) -> list[Result]:
        """Connectivity checks: a signed ping to every webhook (in parallel), then the recorded handshake.

        In chunks of CHECK_CHUNK partners, so memory stays flat however many partners are checked."""
        results: list[Result] = []
        ordered = list(keys)
        for start in range(0, len(ordered), CHECK_CHUNK):
            results += self._check(ordered[start : start + CHECK_CHUNK])
        return results

    def _check(self, keys: list[str]) -> list[Result]:
        records = [record for key in keys if (record := self.stores.partners.partner(key)) is not None]
        targets = [
            PingTarget(record.key, hook.name, hook.url, tuple(signing))
            for record in records
            for hook in record.webhooks.values()
            # none held is drift: the plan registers the webhook again
            if (signing := self.secrets.webhook_signing_secrets(record.key, hook.name, now=self.now))
        ]
        outcomes = list(self.pinger.ping(targets)) if targets and self.pinger is not None else []
        by_hook = {(target.partner, target.webhook): outcome for target, outcome in zip(targets, outcomes, strict=True)}
        events: list[AuditEvent] = []
        for record in records:
            for hook in record.webhooks.values():
                outcome = by_hook.get((record.key, hook.name))
                if outcome is not None:
                    events.extend(self._webhook_outcome(record, hook, outcome))
            record.last_check_at = self.now.isoformat()
        self.journal.record(records, events, now=self.now)
        results = []
        for record in records:
            ok = (record.phase, record.health) == (Phase.ACTIVE, Health.HEALTHY)
            results.append(Result(record.key, ActionName.CHECK_CONNECTIVITY, ok, None if ok else _not_active(record)))
        return results

    def _webhook_outcome(self, record: PartnerRecord, hook: WebhookRecord, outcome: PingOutcome) -> list[AuditEvent]:
        changes = webhook_result(record, hook, ok=outcome.ok, counts=True, error=outcome.error, now=self.now)
        if outcome.ok and changes:
            self.stores.journal.release_held(record.key, hook.name, now=self.now.timestamp())
        return [self.journal.event(event, record.key, details) for event, details in changes]

    def housekeeping(self, desired: DesiredState, plan: Plan, planned_from: dict[str, PartnerRecord]) -> None:
        """Record what changed without an action: new blocked partners, unchanged specs at new blobs; and
        destroy the webhook signing secrets whose rotation overlap has ended.

        ``planned_from``: the records the plan was made from. Only the partners they show to need an
        update are read again (a check may have changed them since), never every record."""
        self.secrets.expire_webhook_secrets(self.now)
        settings = self.stores.journal
        if desired.catalog is not None and settings.setting("catalog") != desired.catalog:
            settings.put_setting("catalog", desired.catalog)
        if desired.approvers is not None and settings.setting(APPROVERS) != desired.approvers:
            settings.put_setting(APPROVERS, desired.approvers)
        acted = {action.partner for action in plan.actions}
        updates: list[PartnerRecord] = []
        events: list[AuditEvent] = []
        for key, blocked in desired.blocked.items():
            new = blocked.never_approved and key not in planned_from and key not in acted
            if new and self.stores.partners.partner(key) is None:
                updates.append(PartnerRecord(key=key, phase=Phase.PENDING_APPROVAL))
        for key, partner in desired.partners.items():
            before = planned_from.get(key)
            if key in acted or not partner.read or before is None or before.decommissioned:
                continue
            if (before.blob, before.context) == (partner.blob, partner.context):
                continue
            record = self.stores.partners.partner(key)
            if record is None or record.decommissioned:
                continue
            events += self._adopt_spec(record, partner)
            updates.append(record)
        updates += self._reviews_overdue(planned_from, {record.key for record in updates}, events)
        if updates or events:
            self.journal.record(updates, events, now=self.now)

    def _reviews_overdue(
        self, planned_from: dict[str, PartnerRecord], updated: set[str], events: list[AuditEvent]
    ) -> list[PartnerRecord]:
        """Partners whose access review has fallen overdue since the last apply: audited once (review.overdue),
        and written, so their status shows it (AccessReviewed False, DEGRADED)."""
        due = []
        for key, before in planned_from.items():
            if key in updated or before.review_overdue_since is not None or not review.overdue(before, self.now):
                continue
            record = self.stores.partners.partner(key)  # an action or a check may have changed it since
            if record is None or record.review_overdue_since is not None or not review.overdue(record, self.now):
                continue
            self._note_overdue(record, events)
            due.append(record)
        return due

    def _note_overdue(self, record: PartnerRecord, events: list[AuditEvent]) -> None:
        record.review_overdue_since = self.now.isoformat()
        details = {"reviewedAt": record.reviewed_at, "dueAt": _iso(review.due_at(record)),
                   "reviewDays": record.review_days, "onOverdue": record.on_overdue}  # fmt: skip
        events.append(self.journal.event(Event.REVIEW_OVERDUE, record.key, details))

    # --- the handlers, one per action ---------------------------------------------------------------

    def _register_partner(self, step: _Step) -> None:
        record = step.record
        reviewed = self._adopt_spec(record, _desired(step))
        record.registered_at = self.now.isoformat()
        record.webhooks = {}
        record.handshake_at = None
        record.phase = Phase.PROVISIONING
        self._partner_changed(step, Event.PARTNER_REGISTERED)
        step.events += reviewed

    def _update_partner(self, step: _Step) -> None:
        reviewed = self._adopt_spec(step.record, _desired(step))
        self._partner_changed(step, Event.PARTNER_UPDATED)
        step.events += reviewed

    def _partner_changed(self, step: _Step, event: Event) -> None:
        details = {"revision": step.desired.revision, "reason": step.action.reason, "scopes": step.record.scopes,
                   **step.action.details}  # fmt: skip
        step.events.append(self.journal.event(event, step.action.partner, details))
        step.events.append(self.journal.event(Event.APPROVAL_RECORDED, step.action.partner, step.record.approval or {}))

    def _suspend_partner(self, step: _Step) -> None:
        step.record.suspended = True
        if step.action.reason == REVIEW_OVERDUE and step.record.review_overdue_since is None:
            self._note_overdue(step.record, step.events)
        step.events.append(self.journal.event(Event.PARTNER_SUSPENDED, step.action.partner,
                                              {"revision": step.desired.revision}))  # fmt: skip

    def _revoke_credential(self, step: _Step) -> None:
        self.secrets.revoke_credential(step.action.details["credentialId"], now=self.now, reason=step.action.reason)

    def _issue_credential(self, step: _Step) -> None:
        _desired(step)
        key = step.action.partner
        step.record.suspended = False
        self.secrets.issue_credential(key, client_id_for(key), new_client_secret(), now=self.now,
                                      reason=step.action.reason)  # fmt: skip

    def _rotate_credential(self, step: _Step) -> None:
        _, overlap_days = rotation_settings(_desired(step), step.record)
        self.secrets.rotate_credential(step.action.partner, new_client_secret(), now=self.now,
                                       overlap_until=self.now + timedelta(days=overlap_days))  # fmt: skip

    def _register_webhook(self, step: _Step) -> None:
        hook = self._wanted_webhook(step)
        self.secrets.put_webhook_secret(step.action.partner, hook.name, new_webhook_secret(), now=self.now)
        hook.registered_at = self.now.isoformat()
        self._webhook_changed(step, hook)

    def _update_webhook(self, step: _Step) -> None:
        hook = self._wanted_webhook(step)
        old = step.record.webhooks[hook.name]
        hook.registered_at, hook.state = old.registered_at, old.state
        hook.consecutive_failures = old.consecutive_failures
        self._webhook_changed(step, hook)

    def _wanted_webhook(self, step: _Step) -> WebhookRecord:
        return desired_webhooks(desired_spec(_desired(step), step.record))[step.action.details["name"]]

    def _webhook_changed(self, step: _Step, hook: WebhookRecord) -> None:
        step.record.webhooks[hook.name] = hook
        details = {"name": hook.name, "url": hook.url, "events": hook.events, "reason": step.action.reason}
        step.events.append(self.journal.event(Event.WEBHOOK_REGISTERED, step.action.partner, details))

    def _remove_webhook(self, step: _Step) -> None:
        name = step.action.details["name"]
        self.secrets.remove_webhook_secret(step.action.partner, name)
        step.record.webhooks.pop(name, None)
        if step.action.reason != "decommissioned":  # partner.decommissioned says it all
            details = {"webhookRemoved": name, "reason": step.action.reason}
            step.events.append(self.journal.event(Event.PARTNER_UPDATED, step.action.partner, details))

    def _decommission_partner(self, step: _Step) -> None:
        key, record = step.action.partner, step.record
        record.phase = Phase.DECOMMISSIONED
        record.webhooks = {}
        approval = step.desired.deleted.get(key)
        record.approval = approval.to_json() if approval else record.approval
        record.updated_at = self.now.isoformat()
        step.events.append(self.journal.event(Event.PARTNER_DECOMMISSIONED, key, {"revision": step.desired.revision}))
        if approval is not None:
            step.events.append(self.journal.event(Event.APPROVAL_RECORDED, key, approval.to_json()))

    def _adopt_spec(self, record: PartnerRecord, partner: DesiredPartner) -> list[AuditEvent]:
        """Take on the approved version; an approval of the manifest is a review of the partner's access, audited
        as review.recorded (the first approval included)."""
        spec = desired_spec(partner, record)
        record.keys_first_seen = _keys_first_seen(record, spec, self.now)
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
            record.requests_per_minute = partner.policy.spec.gateway.requestsPerMinute  # the gateway's rate limit
            record.burst = partner.policy.spec.gateway.burst
            reviews = partner.policy.spec.accessReview
            record.review_days, record.on_overdue = reviews.reviewDays, reviews.onOverdue
            record.unused_scope_days = reviews.unusedScopeDays
        legal = spec.get("legalBasis")
        record.legal_expires_on = legal.get("expiresOn") if isinstance(legal, dict) else None
        record.updated_at = self.now.isoformat()
        if record.phase == Phase.DECOMMISSIONED:
            record.phase = Phase.PROVISIONING
        if record.reviewed_at == partner.approval.approved_at:
            return []
        record.reviewed_at, record.review_overdue_since = partner.approval.approved_at, None
        details = {**partner.approval.to_json(), "reviewedAt": record.reviewed_at,
                   "dueAt": _iso(review.due_at(record))}  # fmt: skip
        return [self.journal.event(Event.REVIEW_RECORDED, record.key, details)]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _keys_first_seen(record: PartnerRecord, spec: dict[str, Any], now: datetime) -> dict[str, str]:
    """private_key_jwt key ids and when each was first seen, as ``spec`` is adopted (DESIGN §6).

    A manifest's keys are first seen when first applied; a key removed and added again is new. Keys at a
    ``jwksUri`` are noted by the gateway as it meets them; they start afresh when the URI changes."""
    if client_authentication_of(spec) != "private_key_jwt":
        return {}
    auth = spec.get("auth", {})
    if auth.get("jwks") is not None:
        return {kid: record.keys_first_seen.get(kid, now.isoformat()) for kid in inline_key_ids(spec)}
    if auth.get("jwksUri") != record.spec.get("auth", {}).get("jwksUri"):
        return {}
    return dict(record.keys_first_seen)


def _desired(step: _Step) -> DesiredPartner:
    """The approved version an action applies; the planner emits these actions only for partners that have one."""
    if step.partner is None:
        raise ValueError(f"{step.action.action} of {step.action.partner} has no desired version")
    return step.partner


def _not_active(record: PartnerRecord) -> str:
    reasons = [f"webhook {hook.name} {hook.state}: {hook.last_error}" for hook in record.webhooks.values()
               if hook.state != WebhookState.ACTIVE]  # fmt: skip
    if record.phase == Phase.AWAITING_HANDSHAKE:
        reasons.insert(0, "awaiting handshake: the partner has not called /v1/ping yet")
    elif record.phase != Phase.ACTIVE:
        reasons.insert(0, f"phase {record.phase}")
    return "; ".join(reasons)
