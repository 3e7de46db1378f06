"""One partner's failure never blocks the others (DESIGN §5): its actions fail with a message, theirs converge."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime

import pytest

from reconciler.backends import open_stores
from reconciler.credentials import Credential
from reconciler.engine.executor import Executor
from reconciler.engine.journal import Journal
from reconciler.engine.plan import Action, Plan
from reconciler.stores import SecretStore, Stores
from reconciler.vocabulary import ActionName
from tests.support.desired import Version, desired_of
from tests.support.engine import Installation
from tests.support.repo import PARTNER, TENANT, edit

ACME, BETA = f"{TENANT}/acme-bank", f"{TENANT}/beta-ngo"
SECOND_HOOK = """    - name: second-hook
      url: "https://hooks.second.example/x"
      events: [payment.status.changed]
  mappings:"""


def test_a_partner_with_a_damaged_record_fails_alone_and_the_others_converge(installation: Installation) -> None:
    beta = PARTNER.replace("acme-bank", "beta-ngo")
    installation.repo.write_partner(PARTNER)
    installation.repo.write_partner(beta, name="beta-ngo")
    installation.repo.commit("Onboard ACME and Beta")
    installation.apply()
    # ACME's sealed pickup is altered by hand: nothing can be added to it any more.
    with sqlite3.connect(installation.home / "secrets" / "secrets.db") as db:
        db.execute("UPDATE pickups SET sealed = zeroblob(60) WHERE partner = ?", (ACME,))
    installation.repo.write_partner(edit(PARTNER, "  mappings:", SECOND_HOOK))
    installation.repo.write_partner(edit(beta, "  mappings:", SECOND_HOOK), name="beta-ngo")
    installation.repo.commit("A second webhook for both")

    result = installation.run("--output", "json", "apply")
    assert result.exit_code == 1
    outcome = {(r["partner"], r["action"]): r for r in result.json()["results"] if r["action"] != "check-connectivity"}
    failed = outcome[ACME, "register-webhook"]
    assert not failed["ok"] and "IntegrityError" in failed["error"] and "altered" in failed["error"]
    assert outcome[BETA, "register-webhook"]["ok"]
    assert "Traceback" not in result.stderr
    hooks = {entry["partner"]: [hook["name"] for hook in entry["webhooks"]] for entry in installation.status().values()}
    assert hooks[BETA] == ["payment-events", "second-hook"]
    assert hooks[ACME] == ["payment-events"]  # left as it was: the next run tries again
    assert [(partner, action) for partner, action, _ in installation.actions()] == [(ACME, "register-webhook")]


class BrokenFor:
    """The installation's secret store with a bug for one partner: issuing its credential raises."""

    def __init__(self, store: SecretStore, partner: str) -> None:
        self._store, self._partner = store, partner

    def issue_credential(self, partner: str, client_id: str, secret: str, *, now: datetime, reason: str) -> Credential:
        if partner == self._partner:
            raise RuntimeError("a bug in issuing")
        return self._store.issue_credential(partner, client_id, secret, now=now, reason=reason)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_a_bug_in_one_partner_is_logged_with_its_traceback_and_isolated(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    opened = open_stores(home=tmp_path)  # type: ignore[arg-type]
    stores = Stores(opened.partners, opened.journal, BrokenFor(opened.secrets, ACME))  # type: ignore[arg-type]
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    desired = desired_of([Version("acme-bank", ("payment:status:read",), (), False),
                          Version("beta-ngo", ("payment:status:read",), (), False)], "c" * 40)  # fmt: skip
    plan = Plan("c" * 40, [Action(key, ActionName.ISSUE_CREDENTIAL, "new-partner") for key in (ACME, BETA)])
    try:
        executor = Executor(stores, Journal(stores, actor="test"), now=now)
        with caplog.at_level(logging.ERROR, logger="partnerctl"):
            results = executor.run(plan, desired, {})
        issued = {key for key, credentials in opened.secrets.live_credentials().items() if credentials}
    finally:
        opened.close()
    assert [(r.partner, r.ok) for r in results] == [(ACME, False), (BETA, True)]
    assert issued == {BETA}
    assert results[0].error == "internal error (RuntimeError); the traceback is in the log"
    [record] = [r for r in caplog.records if "issue-credential of " + ACME in r.getMessage()]
    assert record.exc_info is not None and "a bug in issuing" in str(record.exc_info[1])
