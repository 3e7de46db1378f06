"""The core path, top to bottom: load → validate → approve → plan → apply → record.

:class:`Reconciler` ties a partner repository, an approval gate and the two stores together; the
CLI (and later the cluster loop) builds one and calls a single method.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconciler.approval.gate import ApprovalGate
from reconciler.backends import open_secrets, open_state
from reconciler.backends.git import Revision, open_repository
from reconciler.backends.sqlite.lock import installation_lock
from reconciler.clock import now as clock_now
from reconciler.credentials import Credential, new_client_secret
from reconciler.engine import desired as desired_state
from reconciler.engine.audit import AuditEvent, AuditLog, Verdict
from reconciler.engine.executor import Executor, Result, StopSignal
from reconciler.engine.plan import LiveState, Plan, make_plan, stable_until
from reconciler.engine.status import status_json
from reconciler.errors import ReconcilerError, UsageError
from reconciler.stores.secrets import Pickup, SecretStore
from reconciler.stores.state import StateStore


@dataclass
class Config:
    repo: str
    ref: str
    home: Path
    gate: ApprovalGate | None = None  # needed only to plan
    state_url: str | None = None
    secrets_url: str | None = None
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

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "results": [result.to_json() for result in self.results + self.checks],
        }


class Reconciler:
    def __init__(self, config: Config) -> None:
        self.config = config
        home = config.home
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state = open_state(config.state_url, home=home)
        self.secrets = open_secrets(config.secrets_url, home=home)
        self.audit = AuditLog(home / "audit.jsonl")
        try:
            bind_stores(self.state, self.secrets)
        except ReconcilerError:
            self.close()
            raise

    def close(self) -> None:
        self.state.close()
        self.secrets.close()

    def __enter__(self) -> Reconciler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plan and apply ---------------------------------------------------------------------------

    def plan(self, *, use_memo: bool = True) -> PlanOutcome:
        """Plan from scratch, or answer from the memo when no input has changed since the last plan
        that had nothing to do: same commit, gate, options and store versions (bumped by triggers,
        hand edits included), and no rotation, check or date change due yet."""
        if self.config.gate is None:
            raise UsageError("planning needs an approval mode (--approval)")
        now = clock_now()
        repo = open_repository(self.config.repo, home=self.config.home)
        revision = Revision(repo, self.config.ref)
        memo_key = self._memo_key(revision, self.config.gate) if use_memo else None
        if memo_key is not None:
            memo = self.state.cached([memo_key]).get(memo_key)
            if memo is not None and memo["from"] <= now.isoformat() < memo["until"]:
                plan = Plan(revision.sha, [], memo["checks"], memo["blocked"])
                return PlanOutcome(plan, desired_state.DesiredState(revision.sha), LiveState({}, {}, {}))
        live = LiveState(
            records=self.state.partners(),
            credentials=self.secrets.live_credentials(),
            webhook_secrets=self.secrets.webhook_secret_names(),
        )
        desired = desired_state.build(
            revision,
            self.config.gate,
            live.records,
            self.state,
            today=now.date(),
            allow_loopback_webhooks=self.config.allow_loopback_webhooks,
        )
        plan = make_plan(desired, live, now=now, check_interval=self.config.check_interval)
        if memo_key is not None and not plan.actions and not any(b.never_approved for b in desired.blocked.values()):
            until = stable_until(desired, live, now=now, check_interval=self.config.check_interval)
            memo = {"from": now.isoformat(), "until": until.isoformat(), "checks": plan.checks, "blocked": plan.blocked}
            self.state.cache({memo_key: memo})
        return PlanOutcome(plan, desired, live)

    def _memo_key(self, revision: Revision, gate: ApprovalGate) -> str | None:
        parts = [
            revision.sha,
            gate.fingerprint(),
            self.state.version(),
            self.secrets.version(),
            str(self.config.allow_loopback_webhooks),
            str(self.config.check_interval.total_seconds()),
            desired_state.VALIDATION_VERSION,
        ]
        if any(part is None for part in parts):
            return None
        return "plan|" + hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()

    def apply(self, *, stop: StopSignal | None = None) -> ApplyOutcome:
        with installation_lock(self.config.home, timeout=60):
            executor = self._executor(actor="reconciler")
            executor.recover()
            outcome = self.plan()
            results = executor.run(outcome.plan, outcome.desired, outcome.live, stop=stop)
            if stop is not None and stop.is_set():
                return ApplyOutcome(outcome.plan.revision, results, [])
            checks = executor.check(outcome.plan.checks, allow_loopback=self.config.allow_loopback_webhooks)
            executor.housekeeping(outcome.desired, outcome.plan, self.state.partners())
        return ApplyOutcome(outcome.plan.revision, results, checks)

    # --- credentials ------------------------------------------------------------------------------

    def deliver(self, partner: str, *, token_endpoint: str = "") -> Pickup | None:
        """The one-time pickup of ``partner``; None (audited as refused) when there is none."""
        with installation_lock(self.config.home, timeout=60):
            executor = self._executor()
            executor.recover()
            pickup = self.secrets.take_pickup(partner, now=clock_now(), token_endpoint=token_endpoint)
            executor.commit([], [])
        return pickup

    def rotate(self, partner: str) -> Credential:
        """Force a rotation now; the old secret stays valid for the tenant's overlap."""
        with installation_lock(self.config.home, timeout=60):
            executor = self._executor()
            executor.recover()
            record = self.state.partner(partner)
            if record is None or record.phase in ("DECOMMISSIONED", "PENDING_APPROVAL") or record.suspended:
                raise ReconcilerError(f"{partner} has no live integration to rotate (see partnerctl status)")
            now = clock_now()
            credential = self.secrets.rotate_credential(
                partner, new_client_secret(), now=now, overlap_until=now + timedelta(days=record.overlap_days)
            )
            executor.commit([], [AuditEvent("partner.updated", partner, {"reason": "forced rotation"}, executor.actor)])
        return credential

    # --- status and audit -------------------------------------------------------------------------

    def status(self, partner: str | None = None) -> list[dict[str, Any]]:
        records = self.state.partners()
        if partner is not None:
            if partner not in records:
                raise ReconcilerError(f"unknown partner {partner!r}; see partnerctl status for the list")
            records = {partner: records[partner]}
        live = self.secrets.live_credentials()
        entries = []
        for key, record in sorted(records.items()):
            active = next((c for c in live.get(key, []) if c.state == "active"), None)
            entries.append(status_json(record, active))
        return entries

    def verify_audit(self) -> Verdict:
        return self.audit.verify(self.state.audit_head())

    # --- internals --------------------------------------------------------------------------------

    def _executor(self, actor: str | None = None) -> Executor:
        return Executor(self.state, self.secrets, self.audit, now=clock_now(), actor=actor or self.config.actor)


STORE_ID = "secret-store-id"


def bind_stores(state: StateStore, secrets: SecretStore) -> None:
    """After a migration, refuse any secret store but the one the live state was moved to.

    Forgetting ``--secrets`` after ``secrets migrate`` would otherwise open a fresh, empty local
    store, and the next apply would re-issue every partner's credential. The migration writes the
    same id into the state and the new store; without a migration nothing is recorded or checked."""
    recorded = state.setting(STORE_ID)
    if recorded is None:
        return
    present = secrets.sealed(STORE_ID)
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
