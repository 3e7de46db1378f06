"""The state store's behaviour, the same for SQLite and for PartnerIntegration objects in Kubernetes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.kubernetes.state import KubernetesStateStore
from reconciler.backends.sqlite.state import SqliteStateStore
from reconciler.stores.state import AuditHead, PartnerRecord, StateStore, WebhookRecord
from tests.support.kube import FakeKubernetes

ACME, BETA = "ministry-social-affairs/acme-bank", "ministry-social-affairs/beta-ngo"


@pytest.fixture(params=["sqlite", "kubernetes"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        opened: StateStore = SqliteStateStore(tmp_path / "state.db")
    else:
        request.getfixturevalue("kube_api")
        opened = KubernetesStateStore("scp", tmp_path)
    yield opened
    opened.close()


def edit_by_hand(store: StateStore, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Change ACME's record behind the store's back, as an operator with access to the backend would."""
    if isinstance(store, SqliteStateStore):
        with sqlite3.connect(tmp_path / "state.db") as db:
            db.execute("""UPDATE partners SET data = replace(data, '"ACTIVE"', '"SUSPENDED"')""")
    else:
        fake: FakeKubernetes = request.getfixturevalue("kube_api")
        with fake.lock:
            stored = fake.objects["partnerintegrations", "scp", "ministry-social-affairs.acme-bank"]
            stored["status"]["record"]["phase"] = "SUSPENDED"
            fake._stamp(stored, "partnerintegrations")


def record(key: str, phase: str = "ACTIVE") -> PartnerRecord:
    hook = WebhookRecord("payment-events", "https://hooks.example/scp", ["payment.status.changed"], "payment-v1")
    return PartnerRecord(key=key, phase=phase, health="HEALTHY", spec={"scopes": ["payment:status:read"]},
                         revision="ab" * 20, webhooks={hook.name: hook},
                         approval={"commit": "cd" * 20, "approver": "alice@msa.example", "policyDocument": "DSA-1",
                                   "approvedAt": "2026-11-28T12:00:00+00:00"})  # fmt: skip


def test_committed_records_read_back_whole(store: StateStore) -> None:
    store.commit([record(ACME), record(BETA, "AWAITING_HANDSHAKE")], AuditHead(seq=3, hash="f" * 64, offset=99))
    assert store.partners() == {ACME: record(ACME), BETA: record(BETA, "AWAITING_HANDSHAKE")}
    assert store.partner(ACME) == record(ACME)
    assert store.partner("ministry-social-affairs/nobody") is None
    assert store.audit_head() == AuditHead(seq=3, hash="f" * 64, offset=99)


def test_a_record_is_replaced_by_its_next_commit(store: StateStore) -> None:
    store.commit([record(ACME)])
    store.commit([record(ACME, "SUSPENDED")])
    assert store.partner(ACME) == record(ACME, "SUSPENDED")
    assert list(store.partners()) == [ACME]


def test_the_version_moves_with_every_change_hand_edits_included(
    store: StateStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store.commit([record(ACME)])
    before = store.version()
    assert before is not None and store.version() == before, "reading changes nothing"
    store.commit([record(ACME, "SUSPENDED")])
    after_commit = store.version()
    assert after_commit != before
    store.commit([record(ACME)])
    edit_by_hand(store, request, tmp_path)
    assert store.version() not in (before, after_commit, None)
    assert store.partner(ACME) is not None and store.partner(ACME).phase == "SUSPENDED"  # type: ignore[union-attr]


def test_settings_and_the_memo_round_trip(store: StateStore) -> None:
    store.put_setting("catalog", {"spec": {"scopes": []}})
    store.cache({"plan|x": {"until": "2027-01-01"}})
    assert store.setting("catalog") == {"spec": {"scopes": []}}
    assert store.cached(["plan|x", "plan|y"]) == {"plan|x": {"until": "2027-01-01"}}
