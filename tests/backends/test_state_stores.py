"""The stores' behaviour: partner records the same in SQLite, PostgreSQL and as PartnerIntegration objects in
Kubernetes; the installation journal (SQLite or PostgreSQL) committing the audit head with the records it
explains, its outbox, and what gateway replicas share (rate-limit buckets, keys seen once, revoked tokens)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler import clock
from reconciler.backends.kubernetes.state import KubernetesPartners
from reconciler.backends.postgresql.changes import ChangeListener
from reconciler.backends.postgresql.database import Database as PostgresDatabase
from reconciler.backends.postgresql.state import CLAIM_SECONDS, PostgresJournal, PostgresPartners
from reconciler.backends.sqlite.database import Database
from reconciler.backends.sqlite.state import SCHEMA, SqliteJournal, SqlitePartners
from reconciler.stores.journal import Bucket
from reconciler.stores.partners import PartnerStore
from reconciler.stores.records import (
    AuditEvent,
    AuditHead,
    DeliveryAttempt,
    DeliveryRow,
    PartnerRecord,
    StoredEvent,
    WebhookRecord,
)
from reconciler.vocabulary import DeliveryStatus, Event, Health, Phase
from tests.conftest import NO_REAL_KUBERNETES
from tests.support.cluster import Cluster, opened_cluster

ACME, BETA = "ministry-social-affairs/acme-bank", "ministry-social-affairs/beta-ngo"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


@dataclass
class Backend:
    """A partner-record store under test, and the cluster behind it when it is Kubernetes."""

    store: PartnerStore
    cluster: Cluster | None = None
    database: Path | None = None
    postgres: str | None = None

    def edit_by_hand(self) -> None:
        """Change ACME's record behind the store's back, as an operator with access to the backend would."""
        if self.database is not None:
            with sqlite3.connect(self.database) as db:
                db.execute("""UPDATE partners SET data = replace(data, '"ACTIVE"', '"SUSPENDED"')""")
            return
        if self.postgres is not None:
            with psycopg.connect(self.postgres, autocommit=True) as db:
                db.execute("""UPDATE partners SET data = jsonb_set(data, '{phase}', '"SUSPENDED"')""")
            return
        assert self.cluster is not None

        def suspend(stored: dict[str, Any]) -> None:
            stored["status"]["record"]["phase"] = "SUSPENDED"

        self.cluster.edit("partnerintegrations", "ministry-social-affairs.acme-bank", suspend, status=True)


@contextmanager
def kubernetes(kind: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[Cluster]:
    """The fake or the real API server (as conftest's ``cluster``), KUBECONFIG pointing at it."""
    servers = request.getfixturevalue("kube_servers") if kind == "real" else None
    if kind == "real" and servers is None:
        pytest.skip(NO_REAL_KUBERNETES)
    monkeypatch = request.getfixturevalue("monkeypatch")
    with opened_cluster(kind, folder, servers) as opened:
        monkeypatch.setenv("KUBECONFIG", str(opened.kubeconfig))
        yield opened


@pytest.fixture(params=["sqlite", "postgresql", "kubernetes (fake)", "kubernetes (real)"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        store = SqlitePartners(Database(tmp_path / "state.db", SCHEMA))
        yield Backend(store, database=tmp_path / "state.db")
        store.close()
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        records = PostgresPartners(PostgresDatabase(url))
        yield Backend(records, postgres=url)
        records.close()
        return
    with kubernetes("real" if "real" in request.param else "fake", request, tmp_path) as cluster:
        opened = KubernetesPartners(cluster.namespace)
        yield Backend(opened, cluster)
        opened.close()


def record(key: str, phase: str = "ACTIVE") -> PartnerRecord:
    hook = WebhookRecord("payment-events", "https://hooks.example/scp", ["payment.status.changed"], "payment-v1")
    return PartnerRecord(key=key, phase=Phase(phase), health=Health.HEALTHY, spec={"scopes": ["payment:status:read"]},
                         revision="ab" * 20, webhooks={hook.name: hook},
                         approval={"commit": "cd" * 20, "approver": "alice@msa.example", "policyDocument": "DSA-1",
                                   "approvedAt": "2026-11-28T12:00:00+00:00"})  # fmt: skip


def test_saved_records_read_back_whole(backend: Backend) -> None:
    store = backend.store
    store.save([record(ACME), record(BETA, "AWAITING_HANDSHAKE")])
    assert store.partners() == {ACME: record(ACME), BETA: record(BETA, "AWAITING_HANDSHAKE")}
    assert store.partner(ACME) == record(ACME)
    assert store.partner("ministry-social-affairs/nobody") is None


def test_a_record_is_replaced_by_its_next_save(backend: Backend) -> None:
    store = backend.store
    store.save([record(ACME)])
    store.save([record(ACME, "SUSPENDED")])
    assert store.partner(ACME) == record(ACME, "SUSPENDED")
    assert list(store.partners()) == [ACME]


def test_the_version_moves_with_every_change_hand_edits_included(backend: Backend) -> None:
    store = backend.store
    store.save([record(ACME)])
    before = store.version()
    assert before is not None and store.version() == before, "reading changes nothing"
    store.save([record(ACME, "SUSPENDED")])
    after_save = store.version()
    assert after_save != before
    store.save([record(ACME)])
    backend.edit_by_hand()
    assert store.version() not in (before, after_save, None)
    assert store.partner(ACME) is not None and store.partner(ACME).phase == "SUSPENDED"  # type: ignore[union-attr]


Journal = SqliteJournal | PostgresJournal


@pytest.fixture(params=["same database", "kubernetes records (fake)", "kubernetes records (real)", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Journal, PartnerStore]]:
    if request.param == "postgresql":
        records = PostgresPartners(PostgresDatabase(request.getfixturevalue("postgres_url")))
        yield PostgresJournal(records.database, partners=records), records
        records.close()
        return
    database = Database(tmp_path / "state.db", SCHEMA)
    if request.param == "same database":
        partners = SqlitePartners(database)
        yield SqliteJournal(database, home=tmp_path, partners=partners), partners
    else:
        with kubernetes("real" if "real" in request.param else "fake", request, tmp_path / "kube") as cluster:
            kube = KubernetesPartners(cluster.namespace)
            yield SqliteJournal(database, home=tmp_path, partners=kube), kube
            kube.close()
    database.close()


def test_recorded_events_chain_and_their_records_land(journal: tuple[Journal, PartnerStore]) -> None:
    store, partners = journal
    event = AuditEvent(Event.PARTNER_REGISTERED, ACME, {"reason": "new-partner"})
    head = store.record([event, event], [record(ACME)], now=NOW, outbox_cursor=7)
    assert head.seq == 2 and head.outbox_cursor == 7 and store.audit_head() == head
    assert partners.partner(ACME) == record(ACME)
    entries = list(store.audit_entries())
    assert [entry["seq"] for entry in entries] == [1, 2] and entries[1]["prev_hash"] == entries[0]["hash"]
    assert entries[-1]["hash"] == head.hash


def test_a_reader_following_the_log_gets_only_the_entries_past_its_cursor(
    journal: tuple[Journal, PartnerStore],
) -> None:
    store, _ = journal
    tricky = {"note": 'a value holding "seq": 99, as text'}  # never taken for the entry's own seq
    store.record([AuditEvent(Event.PARTNER_UPDATED, ACME, tricky) for _ in range(5)], [], now=NOW, outbox_cursor=None)
    assert [entry["seq"] for entry in store.audit_entries(3)] == [4, 5]
    assert [entry["seq"] for entry in store.audit_entries()] == [1, 2, 3, 4, 5]
    assert [entry["details"] for entry in store.audit_entries(4)] == [tricky]


def test_a_record_without_events_leaves_the_head_alone(journal: tuple[Journal, PartnerStore]) -> None:
    store, partners = journal
    store.record([], [record(ACME, "SUSPENDED")], now=NOW, outbox_cursor=None)
    assert store.audit_head() == AuditHead()
    assert partners.partner(ACME) == record(ACME, "SUSPENDED")


def test_entries_past_the_committed_head_are_cut_on_recovery(journal: tuple[Journal, PartnerStore]) -> None:
    store, _ = journal
    if not isinstance(store, SqliteJournal):
        pytest.skip("PostgreSQL commits entries and head in one transaction: nothing is ever past the head")
    store.record([AuditEvent(Event.PARTNER_UPDATED, ACME, {})], [], now=NOW, outbox_cursor=None)
    committed = store.log.path.read_bytes()
    with store.log.path.open("ab") as log:  # what a writer killed between the two phases leaves behind
        log.write(b'{"seq": 2, "event": "partner.updated"}\n')
    store.recover()
    assert store.log.path.read_bytes() == committed


def test_settings_and_the_memo_round_trip(journal: tuple[Journal, PartnerStore]) -> None:
    store, _ = journal
    store.put_setting("catalog", {"spec": {"scopes": []}})
    store.cache({"plan|x": {"until": "2027-01-01"}})
    assert store.setting("catalog") == {"spec": {"scopes": []}}
    assert store.cached(["plan|x", "plan|y"]) == {"plan|x": {"until": "2027-01-01"}}


def test_a_long_running_process_does_not_keep_a_connection_per_finished_thread(tmp_path: Path) -> None:
    """The dispatcher runs each pass with a fresh executor: connections of finished threads are closed."""
    database = Database(tmp_path / "state.db", SCHEMA)
    journal = SqliteJournal(database, home=tmp_path, partners=SqlitePartners(database))

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before = open_files()
    for _ in range(40):
        with ThreadPoolExecutor(max_workers=1) as executor:
            executor.submit(journal.setting, "catalog").result()
    assert open_files() - before < 10  # a leak would hold 40 connections, each with its files open
    database.close()


def test_the_outbox_keeps_deliveries_until_their_outcome_is_recorded(journal: tuple[Journal, PartnerStore]) -> None:
    store, _ = journal
    rows = [DeliveryRow(0, "evt_1", ACME, hook, f"msg_{hook}", DeliveryStatus.PENDING, 0, 100.0)
            for hook in ("a", "b")]  # fmt: skip
    store.enqueue(StoredEvent("evt_1", "payment.status.changed", {"status": "paid"}, "2026-11-28T12:00:00+00:00"), rows)
    assert store.due(99.0, 10) == [], "not due before its time"
    due = store.due(100.0, 10)
    assert [row.message_id for row in due] == ["msg_a", "msg_b"]
    assert store.events(["evt_1", "evt_1"])["evt_1"].data == {"status": "paid"}
    store.record_attempts([replace(due[0], status=DeliveryStatus.DELIVERED, attempts=1, last_status=200)])
    store.hold(ACME, "b")
    assert [(row.message_id, row.status) for row in store.deliveries("evt_1")] == [
        ("msg_a", DeliveryStatus.DELIVERED), ("msg_b", DeliveryStatus.HELD)]
    assert store.release_held(ACME, "b", now=500.0) == 1
    assert [row.message_id for row in store.due(500.0, 10)] == ["msg_b"]


def test_workers_claim_what_they_are_handed(journal: tuple[Journal, PartnerStore]) -> None:
    """Two workers asking at once get disjoint deliveries; an unrecorded claim returns after its lease."""
    store, _ = journal
    rows = [DeliveryRow(0, "evt_1", ACME, "a", f"msg_{n}", DeliveryStatus.PENDING, 0, 100.0) for n in range(10)]
    store.enqueue(StoredEvent("evt_1", "payment.status.changed", {}, "2026-11-28T12:00:00+00:00"), rows)
    lease = CLAIM_SECONDS + 60
    first, second = store.due(100.0, 6, lease=lease), store.due(100.0, 6, lease=lease)
    assert len(first) == 6 and len(second) == 4
    assert not {row.message_id for row in first} & {row.message_id for row in second}
    assert store.due(100.0 + lease - 1, 10) == [], "claimed: no one else sends them meanwhile"
    store.record_attempts([replace(row, status=DeliveryStatus.DELIVERED, attempts=1) for row in first])
    again = store.due(100.0 + lease + 1, 10)
    assert sorted(row.message_id for row in again) == sorted(row.message_id for row in second), (
        "a worker that died mid-delivery leaves its claims to another after the lease")


# --- what gateway replicas share: rate-limit buckets, keys seen once, revoked tokens -------------------------


@dataclass
class Shared:
    """A journal under test for what gateway replicas share, and a second process's view of the same store."""

    store: Journal
    open_another: Callable[[], Journal]
    count: Callable[[str], int]  # rows in a table, read behind the store's back


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shared]:
    opened: list[Any] = []
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")

        def open_postgres() -> Journal:
            records = PostgresPartners(PostgresDatabase(url))
            opened.append(records)
            return PostgresJournal(records.database, partners=records)

        def count_postgres(table: str) -> int:
            with psycopg.connect(url, autocommit=True) as db:
                return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]

        yield Shared(open_postgres(), open_postgres, count_postgres)
    else:

        def open_sqlite() -> Journal:
            database = Database(tmp_path / "state.db", SCHEMA)
            opened.append(database)
            return SqliteJournal(database, home=tmp_path, partners=SqlitePartners(database))

        def count_sqlite(table: str) -> int:
            with sqlite3.connect(tmp_path / "state.db") as db:
                return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

        yield Shared(open_sqlite(), open_sqlite, count_sqlite)
    for store in opened:
        store.close()


def test_a_bucket_starts_full_gives_what_it_holds_and_refills_at_its_rate(shared: Shared) -> None:
    store, limit = shared.store, {"rate": 1.0, "burst": 5.0}
    assert store.level("partner|a", now=1000.0, **limit) == 5.0, "a bucket never used is full"
    assert store.take("partner|a", count=3, now=1000.0, **limit) == Bucket(3, 2.0)
    assert store.take("partner|a", count=3, now=1000.0, **limit) == Bucket(2, 0.0), "as many as it holds"
    assert store.take("partner|a", count=1, now=1000.0, **limit) == Bucket(0, 0.0)
    assert store.level("partner|a", now=1001.5, **limit) == pytest.approx(1.5)
    assert store.take("partner|a", count=3, now=1001.5, **limit) == Bucket(1, pytest.approx(0.5))
    assert store.take("partner|a", count=0, now=1990.0, **limit) == Bucket(0, 5.0), "refilled up to its burst"
    assert store.take("partner|a", count=5, now=1990.0, **limit) == Bucket(5, 0.0)
    assert store.take("partner|a", count=1, now=1980.0, **limit) == Bucket(0, 0.0), "a clock behind refills nothing"
    assert store.level("partner|b", now=1990.0, **limit) == 5.0, "buckets are per key"


def test_concurrent_takes_from_two_processes_never_give_more_than_the_bucket_holds(shared: Shared) -> None:
    stores = [shared.store, shared.open_another()]
    taken: list[int] = []

    def take(store: Journal) -> None:
        for _ in range(60):
            taken.append(store.take("partner|hot", count=1, rate=1e-9, burst=100.0, now=1000.0).taken)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(take, stores * 4))
    assert len(taken) == 480 and sum(taken) == 100, "every token given once, and no more"


def test_a_key_is_remembered_once_until_it_expires(shared: Shared) -> None:
    now = clock.now().timestamp()
    store = shared.store
    assert store.remember_once("jti|acme|1", now + 300) is True
    assert store.remember_once("jti|acme|1", now + 300) is False, "a replay"
    assert shared.open_another().remember_once("jti|acme|1", now + 300) is False, "in every process"
    assert store.remember_once("jti|acme|2", now + 300) is True
    assert store.remember_once("jti|acme|old", now - 1) is True
    assert store.remember_once("jti|acme|old", now + 300) is True, "an expired key is seen anew, not a replay"
    store.remember_once("jti|acme|gone", now - 1)
    assert shared.count("remembered_keys") == 4
    shared.open_another().remember_once("jti|acme|3", now + 300)  # a process's first call prunes
    assert shared.count("remembered_keys") == 4, "the expired key is gone, the new one is in"


def test_revoked_tokens_are_kept_until_they_expire_and_move_the_version(shared: Shared) -> None:
    now = clock.now().timestamp()
    store = shared.store
    before = store.revocations_version()
    assert before is not None and store.revocations_version() == before, "reading changes nothing"
    assert store.revoked_tokens(now) == {}
    assert store.revoke_token("jti-1", now + 300) is True
    assert store.revoke_token("jti-1", now + 300) is False, "revoked already"
    assert store.revoke_token("jti-2", now + 10) is True
    moved = store.revocations_version()
    assert moved not in (before, None)
    other = shared.open_another()
    assert other.revoked_tokens(now) == {"jti-1": pytest.approx(now + 300), "jti-2": pytest.approx(now + 10)}
    assert other.revoked_tokens(now + 20) == {"jti-1": pytest.approx(now + 300)}, "an expired token is refused anyway"


def test_every_gateway_hears_of_a_revocation_without_asking(postgres_url: str) -> None:
    database = PostgresDatabase(postgres_url)
    listener = ChangeListener(database)
    records = PostgresPartners(database, listener=listener)
    journal = PostgresJournal(database, partners=records)
    try:
        assert listener.wait_listening(10)
        partners_before, before = records.version(), journal.revocations_version()
        assert before is not None and before.startswith("listen:"), "a local read while listening"
        PostgresJournal(database, partners=PostgresPartners(database)).revoke_token("jti-9", time.time() + 60)
        deadline = time.monotonic() + 5
        while journal.revocations_version() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert journal.revocations_version() != before
        assert records.version() == partners_before, "a revocation changes no partner record: their caches stay"
    finally:
        records.close()


def test_a_listening_gateway_knows_a_bucket_nobody_took_from_is_full(postgres_url: str) -> None:
    """Every take notifies; a bucket nobody took from for a whole refill is full, answered from memory (so
    the failed-authentication check costs no round trip on every token request). A listener that connects
    later learns the last takes from the buckets' rows."""
    database = PostgresDatabase(postgres_url)
    other = PostgresJournal(database, partners=PostgresPartners(database))  # a process without a listener
    limit = {"rate": 1.0, "burst": 10.0}
    assert other.take("failed-auth|early", count=2, now=time.time(), **limit).taken == 2
    listeners = [ChangeListener(database)]
    records = PostgresPartners(database, listener=listeners[0])
    journal = PostgresJournal(database, partners=records)
    try:
        assert listeners[0].wait_listening(10)
        assert journal.level("failed-auth|early", now=time.time(), **limit) == pytest.approx(8.0, abs=0.5)
        assert other.take("failed-auth|a", count=1, now=time.time(), **limit).taken == 1
        deadline = time.monotonic() + 5
        while listeners[0].quiet_since("failed-auth|a") == 0.0:
            assert time.monotonic() < deadline, "the take was heard"
            time.sleep(0.01)
        assert journal.level("failed-auth|a", now=time.time(), **limit) == pytest.approx(9.0, abs=0.5), "read"
        assert journal.level("failed-auth|a", now=time.time() + 10, **limit) == 10.0, "a whole refill later: full"
        with psycopg.connect(postgres_url, autocommit=True) as db:  # not a take: nobody is told, nobody asks
            db.execute("INSERT INTO rate_limits (key, tokens, updated_at) VALUES ('failed-auth|b', 0, %s)",
                       (time.time() + 5,))  # fmt: skip
        assert journal.level("failed-auth|b", now=time.time(), **limit) == 10.0, "never taken: full, not read"
        assert other.level("failed-auth|b", now=time.time(), **limit) == 0.0, "without a listener: always read"
        listeners.append(ChangeListener(database))
        assert listeners[1].wait_listening(10)
        known, heard = listeners[1].quiet_since("failed-auth|a"), listeners[0].quiet_since("failed-auth|a")
        assert known is not None and heard is not None and abs(known - heard) < 1, "a later listener knows it too"
    finally:
        listeners[-1].stop()
        records.close()


def test_the_delivery_log_filters_orders_and_prunes(journal: tuple[Journal, PartnerStore]) -> None:
    store, _ = journal

    def attempt(n: int, hook: str, status: str, day: int) -> DeliveryAttempt:
        return DeliveryAttempt(f"msg_{n}", ACME, hook, "payment.status.changed", 1,
                               f"2026-11-{day:02d}T12:00:00+00:00", status, 200 if status == "delivered" else 503,
                               None if status == "delivered" else "answered 503", 12)  # fmt: skip

    store.log_attempts([attempt(1, "a", "delivered", 1), attempt(2, "a", "failed", 20), attempt(3, "b", "failed", 21),
                        DeliveryAttempt("msg_9", BETA, "a", "payment.status.changed", 1,
                                        "2026-11-21T12:00:00+00:00", "delivered")])  # fmt: skip
    assert [a.message_id for a in store.attempts(ACME)] == ["msg_3", "msg_2", "msg_1"], "newest first, own only"
    assert [a.message_id for a in store.attempts(ACME, webhook="a", status="failed")] == ["msg_2"]
    assert [a.message_id for a in store.attempts(ACME, since="2026-11-20T12:00:00+00:00")] == ["msg_3", "msg_2"]
    assert store.attempts(ACME)[0] == attempt(3, "b", "failed", 21)
    assert store.prune_attempts("2026-11-10T00:00:00+00:00") == 1
    assert [a.message_id for a in store.attempts(ACME)] == ["msg_3", "msg_2"]


def test_a_replay_requeues_a_window_in_its_own_lane(journal: tuple[Journal, PartnerStore]) -> None:
    """Failed and held deliveries of events received in [since, until) go to the replay lane, due now, with
    their message ids; delivered ones only when asked; other partners, webhooks and times stay as they are."""
    store, _ = journal

    def stored(event: str, hour: int, *deliveries: tuple[str, str, str, DeliveryStatus]) -> None:
        rows = [DeliveryRow(0, event, partner, hook, message_id, DeliveryStatus.PENDING, 0, 100.0)
                for partner, hook, message_id, _ in deliveries]  # fmt: skip
        store.enqueue(StoredEvent(event, "payment.status.changed", {}, f"2026-11-28T{hour:02d}:00:00+00:00"), rows)
        outcomes = {message_id: status for _, _, message_id, status in deliveries}
        store.record_attempts([replace(row, status=outcomes[row.message_id], attempts=8, last_status=503)
                               for row in store.deliveries(event)])  # fmt: skip

    failed, held, delivered = DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.DELIVERED
    stored("evt_before", 9, (ACME, "a", "msg_before", failed))
    stored("evt_1", 10, (ACME, "a", "msg_1a", failed), (ACME, "b", "msg_1b", failed), (BETA, "a", "msg_1beta", failed))
    stored("evt_2", 11, (ACME, "a", "msg_2a", held), (ACME, "b", "msg_2b", delivered))
    stored("evt_after", 12, (ACME, "a", "msg_after", failed))
    since, until = "2026-11-28T10:00:00+00:00", "2026-11-28T12:00:00+00:00"

    assert store.replay(ACME, webhook="a", since=since, until=until, statuses=("failed", "held"), now=500.0) == 2
    assert store.due(500.0, 10) == [], "replays are not in the live lane"
    replaying = store.due(500.0, 10, replaying=True)
    assert [(row.message_id, row.attempts, row.last_status) for row in replaying] == [
        ("msg_1a", 0, None), ("msg_2a", 0, None)], "the same message ids, counted afresh"
    everything = ("failed", "held", "delivered")
    assert store.replay(ACME, webhook=None, since=since, until=until, statuses=everything, now=500.0) == 2, (
        "the other webhook: its failed one and, asked for, its delivered one")
    status = {row.message_id: row.status for row in store.deliveries()}
    assert status["msg_before"] == status["msg_after"] == status["msg_1beta"] == failed, (
        "outside the window or not ACME's")
    store.hold(ACME, "a")
    assert {row.message_id for row in store.due(500.0, 10, replaying=True)} == {"msg_1b", "msg_2b"}, (
        "a webhook deactivated meanwhile holds its replays too")


def test_concurrent_batches_of_scope_uses_from_two_processes_add_up_exactly(shared: Shared) -> None:
    stores = [shared.store, shared.open_another()]

    def count(store: Journal) -> None:
        for n in range(25):
            store.count_uses({(ACME, "payment:status:read", "2026-11-28"): 1, (ACME, "payment:status:update",
                              "2026-11-28"): 2, (BETA, "payment:status:read", "2026-11-27"): 1},
                             {(ACME, "payment:status:read"): f"2026-11-28T11:{n:02d}:00+00:00"})  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(count, stores * 2))
    usage = shared.open_another().scope_usage()
    assert usage[ACME]["payment:status:read"].days == {"2026-11-28": 100}
    assert usage[ACME]["payment:status:update"].days == {"2026-11-28": 200}
    assert usage[BETA]["payment:status:read"].days == {"2026-11-27": 100}
    assert usage[ACME]["payment:status:read"].last_used == "2026-11-28T11:24:00+00:00"
    assert usage[ACME]["payment:status:update"].last_used is None, "no last use was given for it"
    assert set(shared.store.scope_usage([BETA])) == {BETA}, "only the partners asked for"


def test_the_last_use_of_a_scope_never_moves_backwards(shared: Shared) -> None:
    store, scope = shared.store, (ACME, "payment:status:read")
    store.count_uses({}, {scope: "2026-11-28T10:00:00+00:00"})
    shared.open_another().count_uses({}, {scope: "2026-11-28T09:59:59.900000+00:00"})  # a replica with an older batch
    assert store.scope_usage()[ACME]["payment:status:read"].last_used == "2026-11-28T10:00:00+00:00"
    store.count_uses({}, {scope: "2026-11-28T12:30:00Z"})
    assert store.scope_usage([ACME])[ACME]["payment:status:read"].last_used == "2026-11-28T12:30:00+00:00"


def test_day_counts_older_than_ninety_days_are_left_out_and_pruned(shared: Shared) -> None:
    store = shared.store
    days = {"2026-06-01": 4, "2026-09-01": 3, "2026-11-28": 2}
    store.count_uses({(ACME, "payment:status:read", day): n for day, n in days.items()},
                     {(ACME, "payment:status:read"): "2026-11-28T12:00:00+00:00"})  # fmt: skip
    assert store.scope_usage()[ACME]["payment:status:read"].days == {"2026-09-01": 3, "2026-11-28": 2}
    assert store.prune_usage("2026-10-01") == 2
    assert shared.count("scope_usage") == 1
    assert store.scope_usage()[ACME]["payment:status:read"].last_used == "2026-11-28T12:00:00+00:00", "kept"
