"""The core path, top to bottom: load → validate → approve → plan → apply → record.

A :class:`Reconciler` is handed the partner repository (a :class:`~reconciler.stores.source.Source`),
an approval gate, the stores and a pinger; the command line builds them from its options and
calls one method. Nothing here knows whether the stores are SQLite, Kubernetes or Vault.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from reconciler.approval.gate import ApprovalGate
from reconciler.clock import now as clock_now
from reconciler.credentials import Credential, active_credential, new_client_secret, new_webhook_secret
from reconciler.engine import desired as desired_state
from reconciler.engine.executor import Executor, Pinger, Result, StopSignal
from reconciler.engine.journal import Journal
from reconciler.engine.plan import LiveState, Plan, make_plan, stable_until
from reconciler.engine.status import status_json
from reconciler.errors import InvalidState, NotFound, ReconcilerError, UsageError
from reconciler.manifests.models import client_authentication_of
from reconciler.stores import Stores
from reconciler.stores.audit import Verdict, verify
from reconciler.stores.records import PartnerRecord, Pickup
from reconciler.stores.source import Revision, Source
from reconciler.vocabulary import Event

__all__ = ["LAST_RECONCILE", "ApplyListener", "ApplyOutcome", "Options", "PlanOutcome", "Reconciler", "bind_stores"]

LAST_RECONCILE = "last-reconcile"  # the setting: when the last apply ran, at which revision, what it left blocked
LOCK_TIMEOUT = 60.0  # seconds to wait for another writer before giving up (Busy)


@dataclass
class Options:
    ref: str = "HEAD"
    allow_loopback_webhooks: bool = False
    check_interval: timedelta = timedelta(minutes=5)
    actor: str = field(default_factory=lambda: f"cli:{_user()}")


@dataclass
class PlanOutcome:
    plan: Plan
    desired: desired_state.DesiredState
    live: LiveState


@dataclass
class ApplyOutcome:
    revision: str
    results: list[Result]
    checks: list[Result]
    plan: Plan | None = None  # what was applied (its blocked changes included); not part of the JSON

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "results": [result.to_json() for result in self.results + self.checks],
        }


class ApplyListener(Protocol):
    """Told of each finished apply, outside the installation lock: the status back on the pull request,
    alerts. A listener queues or retries its own failures; an outage of what it talks to never fails or
    slows an apply, so it never raises for one and does not wait long."""

    def applied(self, outcome: ApplyOutcome, engine: Reconciler) -> None: ...

    def apply_failed(self, error: ReconcilerError, engine: Reconciler) -> None:
        """The apply stopped with ``error`` before it finished (a store or the repository unreachable)."""


class Reconciler:
    def __init__(
        self,
        stores: Stores,
        *,
        source: Source | None = None,
        gate: ApprovalGate | None = None,
        pinger: Pinger | None = None,
        options: Options | None = None,
    ) -> None:
        self.stores = stores
        self.source = source
        self.gate = gate
        self.pinger = pinger
        self.options = options or Options()
        # The last no-op plan read or written: its key hashes every input, so the same key is the same
        # memo, and the loop's pass with nothing to do needs no read of it (10,000 checks are 400 KB).
        self._last_memo: tuple[str, dict[str, Any]] | None = None
        self.listeners: list[ApplyListener] = []
        bind_stores(stores)

    def close(self) -> None:
        self.stores.close()

    def __enter__(self) -> Reconciler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plan and apply ---------------------------------------------------------------------------

    def plan(self, *, use_memo: bool = True) -> PlanOutcome:
        """Plan from scratch, or answer from the memo when no input has changed since the last plan
        that had nothing to do: same commit, gate, options and store versions (bumped by triggers,
        hand edits included), and no rotation, check or date change due yet."""
        if self.gate is None or self.source is None:
            raise UsageError("planning needs a partner repository and an approval mode (--approval)")
        now = clock_now()
        memo_store = self.stores.journal
        revision = self.source.revision(self.options.ref)
        memo_key = self._memo_key(revision, self.gate) if use_memo else None
        if memo_key is not None:
            memo: dict[str, Any] | None
            if self._last_memo is not None and self._last_memo[0] == memo_key:
                memo = self._last_memo[1]
            else:
                memo = memo_store.cached([memo_key]).get(memo_key)
                self._last_memo = (memo_key, memo) if memo is not None else None
            if memo is not None and memo["from"] <= now.isoformat() < memo["until"]:
                plan = Plan(revision.sha, [], memo["checks"], memo["blocked"])
                return PlanOutcome(plan, desired_state.DesiredState(revision.sha), LiveState({}, {}, {}))
        live = LiveState(
            records=self.stores.partners.partners(),
            credentials=self.stores.secrets.live_credentials(),
            webhook_secrets=self.stores.secrets.webhook_secret_names(),
        )
        desired = desired_state.build(
            revision,
            self.gate,
            live.records,
            memo_store,
            today=now.date(),
            allow_loopback_webhooks=self.options.allow_loopback_webhooks,
        )
        plan = make_plan(desired, live, now=now, check_interval=self.options.check_interval)
        if memo_key is not None and not plan.actions and not any(b.never_approved for b in desired.blocked.values()):
            until = stable_until(desired, live, now=now, check_interval=self.options.check_interval)
            memo = {"from": now.isoformat(), "until": until.isoformat(), "checks": plan.checks, "blocked": plan.blocked}
            memo_store.cache({memo_key: memo})
            self._last_memo = (memo_key, memo)
        return PlanOutcome(plan, desired, live)

    def _memo_key(self, revision: Revision, gate: ApprovalGate) -> str | None:
        parts = [
            revision.sha,
            gate.fingerprint(),
            self.stores.partners.version(),
            self.stores.secrets.version(),
            str(self.options.allow_loopback_webhooks),
            str(self.options.check_interval.total_seconds()),
            desired_state.VALIDATION_VERSION,
        ]
        if any(part is None for part in parts):
            return None
        return "plan|" + hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()

    def apply(self, *, stop: StopSignal | None = None) -> ApplyOutcome:
        try:
            applied = self._apply(stop)
        except ReconcilerError as error:
            for listener in self.listeners:
                listener.apply_failed(error, self)
            raise
        for listener in self.listeners:
            listener.applied(applied, self)
        return applied

    def _apply(self, stop: StopSignal | None) -> ApplyOutcome:
        journal = self._journal("reconciler")
        with journal.exclusive(timeout=LOCK_TIMEOUT):
            executor = Executor(self.stores, journal, now=clock_now(), pinger=self.pinger)
            journal.recover(now=executor.now)
            outcome = self.plan()
            results = executor.run(outcome.plan, outcome.desired, outcome.live.records, stop=stop)
            if stop is not None and stop.is_set():
                return ApplyOutcome(outcome.plan.revision, results, [], outcome.plan)
            checks = executor.check(outcome.plan.checks)
            executor.housekeeping(outcome.desired, outcome.plan, outcome.live.records)
            # What the console shows as "as of the last reconcile", and its pending changes.
            self.stores.journal.put_setting(LAST_RECONCILE, {
                "time": executor.now.isoformat(), "revision": outcome.plan.revision, "blocked": outcome.plan.blocked,
                "actions": len(results), "failed": sum(not result.ok for result in results)})  # fmt: skip
        return ApplyOutcome(outcome.plan.revision, results, checks, outcome.plan)

    # --- credentials ------------------------------------------------------------------------------

    def deliver(self, partner: str, *, token_endpoint: str = "") -> Pickup | None:
        """The one-time pickup of ``partner``; None (audited as refused) when there is none.

        A ``private_key_jwt`` partner's pickup holds its webhook secrets only: it has no client secret."""
        journal = self._journal()
        with journal.exclusive(timeout=LOCK_TIMEOUT):
            now = clock_now()
            journal.recover(now=now)
            pickup = self.stores.secrets.take_pickup(partner, now=now, token_endpoint=token_endpoint)
            journal.record([], [], now=now)
        jwt = pickup is not None and self.client_authentication(partner) != "client_secret"
        if pickup is not None and jwt and pickup.client_secret is not None:
            pickup = dataclasses.replace(pickup, client_secret=None)  # never hand out a secret it cannot use
        return pickup

    def delivery(self, partner: str, *, token_endpoint: str) -> dict[str, Any] | None:
        """``credentials deliver``'s document (DESIGN §11): the pickup, wrapped (Vault) or in clear; None when
        there is nothing to pick up. A ``private_key_jwt`` partner gets its client id, the token endpoint and
        its webhook secrets, and no ``client_secret`` key at all (DESIGN §6)."""
        pickup = self.deliver(partner, token_endpoint=token_endpoint)
        if pickup is None:
            return None
        if pickup.wrap_token is not None:
            return {"partner": pickup.partner, "wrap_token": pickup.wrap_token, "wrap_ttl": pickup.wrap_ttl}
        method = self.client_authentication(partner)
        document: dict[str, Any] = {"partner": pickup.partner, "client_id": pickup.client_id}
        if method == "client_secret":
            document["client_secret"] = pickup.client_secret
        document |= {"client_authentication": method, "token_endpoint": token_endpoint,
                     "webhook_secrets": pickup.webhook_secrets}  # fmt: skip
        return document

    def client_authentication(self, partner: str) -> str:
        """How ``partner`` authenticates at the token endpoint as applied: ``client_secret`` or ``private_key_jwt``."""
        record = self.stores.partners.partner(partner)
        return client_authentication_of(record.spec) if record is not None else "client_secret"

    def _rotatable(self, partner: str) -> PartnerRecord:
        """The partner's record, if it has a live integration whose secrets can be rotated."""
        record = self.stores.partners.partner(partner)
        if record is None:
            raise NotFound(f"{partner} is not a known partner (see partnerctl status)")
        if not record.usable:
            raise InvalidState(f"{partner} has no live integration to rotate ({record.phase}; see partnerctl status)")
        return record

    def rotate(self, partner: str) -> Credential:
        """Force a rotation now; the old secret stays valid for the tenant's overlap."""
        journal = self._journal()
        with journal.exclusive(timeout=LOCK_TIMEOUT):
            now = clock_now()
            journal.recover(now=now)
            record = self._rotatable(partner)
            if client_authentication_of(record.spec) == "private_key_jwt":
                raise InvalidState(
                    f"{partner} authenticates with private_key_jwt and has no client secret to rotate; the partner "
                    "rotates its own keys (a reviewed change of its jwks, or at its jwksUri)"
                )
            credential = self.stores.secrets.rotate_credential(
                partner, new_client_secret(), now=now, overlap_until=now + timedelta(days=record.overlap_days)
            )
            journal.record([], [journal.event(Event.PARTNER_UPDATED, partner, {"reason": "forced rotation"})], now=now)
        return credential

    def rotate_webhook_secret(self, partner: str, webhook: str) -> datetime:
        """Give ``webhook`` a new signing secret now, delivered once like the first; until the time returned (the
        tenant's overlap) each message is signed with the old secret too, so the receiver switches when it likes."""
        journal = self._journal()
        with journal.exclusive(timeout=LOCK_TIMEOUT):
            now = clock_now()
            journal.recover(now=now)
            record = self._rotatable(partner)
            if webhook not in record.webhooks:
                raise NotFound(
                    f"{partner} has no webhook {webhook!r} (it has: {', '.join(sorted(record.webhooks)) or 'none'})"
                )
            if webhook not in self.stores.secrets.webhook_secret_names([partner]).get(partner, set()):
                raise InvalidState(
                    f"webhook {webhook} of {partner} has no signing secret yet: run partnerctl apply first"
                )
            overlap_until = now + timedelta(days=record.overlap_days)
            self.stores.secrets.rotate_webhook_secret(
                partner, webhook, new_webhook_secret(), now=now, overlap_until=overlap_until
            )
            journal.record([], [], now=now)  # audits the store's webhook.secret_rotated
        return overlap_until

    # --- status and audit -------------------------------------------------------------------------

    def status(self, partner: str | None = None) -> list[dict[str, Any]]:
        records = self.stores.partners.partners()
        if partner is not None:
            if partner not in records:
                raise NotFound(f"unknown partner {partner!r}; see partnerctl status for the list")
            records = {partner: records[partner]}
        live = self.stores.secrets.live_credentials()
        return [status_json(record, active_credential(live.get(key, []))) for key, record in sorted(records.items())]

    def verify_audit(self) -> Verdict:
        journal = self.stores.journal
        return verify(journal.audit_entries(), journal.audit_head())

    def audit_entries(self) -> Iterator[Any]:
        return self.stores.journal.audit_entries()

    def _journal(self, actor: str | None = None) -> Journal:
        return Journal(self.stores, actor=actor or self.options.actor)


STORE_ID = "secret-store-id"


def bind_stores(stores: Stores) -> None:
    """After a migration, refuse any secret store but the one the live state was moved to.

    Forgetting ``--secrets`` after ``secrets migrate`` would otherwise open a fresh, empty local
    store, and the next apply would re-issue every partner's credential. The migration writes the
    same id into the journal and the new store; without a migration nothing is recorded or checked."""
    recorded = stores.journal.setting(STORE_ID)
    if recorded is None:
        return
    present = stores.secrets.sealed(STORE_ID)
    if present is None or present.decode() != recorded:
        raise UsageError(
            "this installation's secrets were migrated to another store (see `partnerctl secrets migrate`); "
            "pass the --secrets URL it was migrated to (or set PARTNERCTL_SECRETS). Going on with this store "
            "would re-issue every credential."
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
