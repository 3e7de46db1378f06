"""Bad days on PostgreSQL (issue 14, item 7): the server stopped in the middle of an apply, of a dispatch and
under gateway load, restarted (a failover), and every connection of the gateway cut. Each gives a clear
error (the gateway: 503 with Retry-After, never a 500 or a hang), nothing half-applied, no delivery lost or
sent twice beyond the in-flight ones (at-least-once), and the next run converges.

Each test starts its own server (the session's must survive), durable, so that a stop, which is an
immediate shutdown as in a crash, loses no committed transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler import clock
from reconciler.backends.postgresql.database import Database, display_url
from reconciler.backends.postgresql.schema import migrate
from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners
from reconciler.errors import StoreUnavailable
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Phase
from reconciler.webhooks.events import publish
from tests.support import apps
from tests.support.apps import token_for
from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.postgres import PostgresServer, start_server
from tests.support.repo import PARTNER, TENANT, TODAY, edit
from tests.support.servers import HttpRecorder, free_port

PARTNERCTL = str(Path(sys.executable).parent / "partnerctl")
ACME = f"{TENANT}/acme-bank"
# In every --state URL: the server trusts loopback and never asks for it, so it must only never be shown.
PASSWORD = "Fault-Pa55-w0rd"
NOW = datetime.fromisoformat(TODAY).timestamp()
EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "Ana Banda"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PostgresServer]:
    started = start_server(tmp_path / "pg", durable=True)
    yield started
    started.stop()


@dataclass
class Db:
    """A migrated database on our server: ``url`` as partnerctl gets it (with a password), ``admin`` ours."""

    url: str
    admin: str
    shown: str  # how messages name it

    def query(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def new_database(server: PostgresServer) -> Db:
    admin = server.create_database()
    database = Database(admin, max_size=1)
    migrate(database)
    database.close()
    return Db(admin.replace("postgres@", f"postgres:{PASSWORD}@", 1), admin, display_url(admin))


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def assert_clear(stderr: str, db: Db) -> None:
    """One message naming the database and saying it is unavailable: no traceback, no password."""
    assert "Traceback" not in stderr, stderr
    assert db.shown in stderr and "unavailable" in stderr, stderr
    assert PASSWORD not in stderr


def audit(db: Db) -> list[dict[str, Any]]:
    return [json.loads(entry) for (entry,) in db.query("SELECT entry FROM audit_log ORDER BY seq")]


# --- 1. an apply ------------------------------------------------------------------------------------------

PARTNERS = [f"partner-{number:02d}" for number in range(40)]
KEYS = {f"{TENANT}/{name}" for name in PARTNERS}


def test_postgresql_stopped_in_the_middle_of_an_apply(
    server: PostgresServer, git_repo: GitPartnerRepo, tmp_path: Path, receiver: tuple[HttpRecorder, str]
) -> None:
    db = new_database(server)
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", db.url, "--dev-allow-loopback-webhooks"))
    git_repo.write_partners(receiver[1], *PARTNERS)
    git_repo.commit("Onboard forty partners")

    command = [PARTNERCTL, "--repo", str(git_repo.root), "--home", str(installation.home), "--approval", "none",
               *installation.extra, "apply"]  # fmt: skip
    apply = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: db.query("SELECT count(*) FROM partners")[0][0] >= 3, timeout=60, what="three partners applied")
    server.stop()
    stopped = time.monotonic()
    stdout, stderr = apply.communicate(timeout=60)
    assert apply.returncode == 1, stderr
    assert time.monotonic() - stopped < 5, "the apply stops at once, it does not wait for the server"
    assert_clear(stderr, db)
    assert PASSWORD not in stdout
    retried = installation.run("apply")  # while it is still down: the same, at once
    assert retried.exit_code == 1 and time.monotonic() - stopped < 10
    assert_clear(retried.stderr, db)

    server.start()
    recorded = {key for (key,) in db.query("SELECT key FROM partners")}
    entries = audit(db)
    assert 0 < len(recorded) < len(PARTNERS), "the stop landed in the middle of the apply"
    for event in ("partner.registered", "approval.recorded", "webhook.registered"):
        audited = {entry["partner"] for entry in entries if entry["event"] == event}
        assert audited == recorded, f"every partner recorded has its {event}, and only those"
    assert installation.run("audit", "verify").exit_code == 0

    installation.apply()
    assert installation.plan()["actions"] == []
    status = installation.status()
    assert set(status) == KEYS and all(status[key]["credential"] for key in KEYS)
    issued = Counter(entry["partner"] for entry in audit(db) if entry["event"] == "credential.issued")
    assert issued == Counter(dict.fromkeys(KEYS, 1)), "no credential issued twice or lost"
    secrets = installation.secrets()
    assert {key: len(secrets.credentials(key)) for key in KEYS} == dict.fromkeys(KEYS, 1), "no duplicate credential"
    assert set(secrets.live_credentials()) == KEYS, "no orphaned credential"
    assert installation.run("audit", "verify").exit_code == 0
    for name in (PARTNERS[0], PARTNERS[-1]):  # what was issued before the stop is still there to pick up
        delivered = installation.deliver(f"{TENANT}/{name}")
        assert secrets.verify(delivered["client_id"], delivered["client_secret"]) is not None


# --- 2. a dispatch ----------------------------------------------------------------------------------------

HOOKED = ["acme-bank", "beta-bank", "gamma-bank", "delta-bank", "omega-bank"]
EVENTS = 120  # x 5 webhooks: 600 deliveries, two passes (the dispatcher takes 500 at a time)


@dataclass
class GatedReceiver:
    """Partners' webhook endpoints on loopback, recording every webhook-id; the ``gate``-th delivery is held
    until :meth:`release` (so the test can stop the database while a pass is surely in flight)."""

    gate: int
    received: list[str] = field(default_factory=list)
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        receiver, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if b'"type":"payment.status.changed"' in body:
                    with lock:
                        receiver.received.append(self.headers["webhook-id"])
                        count = len(receiver.received)
                    if count == receiver.gate:
                        receiver.reached.set()
                        receiver.released.wait(30)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


def dispatch_once(installation: Installation, db: Db, *, now: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [PARTNERCTL, "--home", str(installation.home), "--state", db.url, "--dev-allow-loopback-webhooks",
               "dispatch", "--once"]  # fmt: skip
    environment = {**os.environ, **({"PARTNERCTL_NOW": now} if now else {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)


def test_postgresql_stopped_in_the_middle_of_a_dispatch(
    server: PostgresServer, git_repo: GitPartnerRepo, tmp_path: Path
) -> None:
    db = new_database(server)
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", db.url, "--dev-allow-loopback-webhooks"))
    receiver = GatedReceiver(gate=550)  # in the second pass: the first is delivered and recorded
    hooks = receiver.start()
    try:
        installation.onboard(*HOOKED, hooks=hooks)
        with apps.stores(installation.home, state=db.url) as stores:
            for _ in range(EVENTS):
                publish(stores, "payment.status.changed", EVENT, now=clock.now())
        messages = {message for (message,) in db.query("SELECT message_id FROM deliveries")}
        assert len(messages) == EVENTS * len(HOOKED)

        command = [PARTNERCTL, "--home", str(installation.home), "--state", db.url, "--dev-allow-loopback-webhooks",
                   "dispatch", "--once"]  # fmt: skip
        dispatcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert receiver.reached.wait(60), "the dispatcher reached its second pass"
        # Claimed by this pass, not recorded yet: the deliveries in flight.
        in_flight = {message for (message,) in db.query(
            "SELECT message_id FROM deliveries WHERE status = 'pending' AND next_attempt_at > %s", NOW)}  # fmt: skip
        assert len(in_flight) == 100
        server.stop()
        receiver.release()
        _, stderr = dispatcher.communicate(timeout=60)
        assert dispatcher.returncode == 1, stderr
        assert_clear(stderr, db)

        server.start()
        statuses = Counter(status for (status,) in db.query("SELECT status FROM deliveries"))
        assert statuses == Counter({"delivered": 500, "pending": 100}), "the first pass was recorded"
        # The pass in flight stays claimed for its lease (its outcome is unknown); after it, it is sent again.
        lease_ends = db.query("SELECT max(next_attempt_at) FROM deliveries WHERE status = 'pending'")[0][0]
        later = dispatch_once(installation, db, now=datetime.fromtimestamp(lease_ends + 1, UTC).isoformat())
        assert later.returncode == 0, later.stderr
    finally:
        receiver.stop()

    received = Counter(receiver.received)
    assert set(received) == messages, "no delivery lost"
    assert {message for message, count in received.items() if count > 1} <= in_flight, \
        "sent twice: only what was in flight when the database stopped"  # fmt: skip
    assert max(received.values()) <= 2
    assert db.query("SELECT DISTINCT status FROM deliveries") == [("delivered",)]


# --- 3 and 4. the gateway ---------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float  # monotonic
    seconds: float
    status: int | None  # None: no answer at all (a timeout, a refused connection)
    retry_after: str | None


@contextmanager
def gateway_process(installation: Installation, db: Db, log: Path) -> Iterator[str]:
    """``partnerctl gateway serve`` over the installation, as deployed: its own process, the pool and the
    change listener. Its log goes to a file (a pipe nobody reads would block it)."""
    port = free_port()
    command = [PARTNERCTL, "--home", str(installation.home), "--state", db.url, "gateway", "serve", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or process.poll() is not None, timeout=30, what="the gateway answers")
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()
    assert PASSWORD not in log.read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def terminate_all(db: Db) -> int:
    """Cut every connection to the database but ours, as an administrator (or a proxy's restart) would."""
    terminated = db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
    assert all(ok for (ok,) in terminated)
    return len(terminated)


def listening(db: Db) -> int:
    """The gateway's LISTEN connections to the database."""
    return int(db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'partnerctl listener'")[0][0])  # fmt: skip


class Load:
    """``clients`` threads asking for tokens back to back, every answer kept, until stopped."""

    def __init__(self, url: str, credentials: dict[str, str], clients: int = 4) -> None:
        self.url, self.auth = url, (credentials["client_id"], credentials["client_secret"])
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self.clients = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self.clients:
            thread.start()

    def _client(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post(f"{self.url}/oauth2/token", data={"grant_type": "client_credentials"},
                                           auth=self.auth)  # fmt: skip
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry_after = None, None
                self.answers.append(Answer(started, time.monotonic() - started, status, retry_after))

    def since(self, moment: float) -> list[Answer]:
        return [answer for answer in list(self.answers) if answer.sent >= moment]

    def stop(self) -> None:
        self._stop.set()
        for thread in self.clients:
            thread.join(timeout=30)


def onboarded_acme(installation: Installation, hooks: str) -> dict[str, str]:
    """ACME onboarded with the highest rate limit the schema allows: the load below is the gateway's
    worst day, not the partner's, and never meets a 429."""
    installation.onboard("acme-bank", hooks=hooks)
    installation.limit(per_minute=100_000, burst=10_000)
    return {key: str(value) for key, value in installation.deliver(ACME).items()}


def test_postgresql_stopped_under_gateway_load_then_failover(
    server: PostgresServer, git_repo: GitPartnerRepo, tmp_path: Path, receiver: tuple[HttpRecorder, str]
) -> None:
    db = new_database(server)
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", db.url, "--dev-allow-loopback-webhooks"))
    credentials = onboarded_acme(installation, receiver[1])
    with gateway_process(installation, db, tmp_path / "gateway.log") as url:
        assert token_for(url, credentials).status_code == 200
        load = Load(url, credentials)
        try:
            wait_for(lambda: len(load.answers) >= 20, timeout=10, what="the load runs")
            server.stop()
            stopped = time.monotonic()
            wait_for(lambda: sum(a.status == 503 for a in load.since(stopped)) >= 20, timeout=10,
                     what="503s while the database is down")  # fmt: skip
            down = time.monotonic()
            wait_for(lambda: time.monotonic() > stopped + 2 and len(load.since(down)) >= 20, timeout=10,
                     what="two seconds of answers while it is down")  # fmt: skip
            restarting = time.monotonic()
            server.start()  # a failover: the same address answers again
            back = wait_for(lambda: next((a.sent for a in load.since(restarting) if a.status == 200), None),
                            timeout=10, what="tokens again after the restart, the gateway untouched")  # fmt: skip
            wait_for(lambda: len(load.since(back + 1)) >= 40, timeout=10, what="answers after the recovery")
        finally:
            load.stop()

    during = [answer for answer in load.since(stopped) if answer.sent + answer.seconds < restarting]
    assert {answer.status for answer in load.answers} <= {200, 503}, "never a 500, never no answer"
    assert all(answer.retry_after for answer in load.answers if answer.status == 503), "every 503 says when"
    assert {answer.status for answer in during if answer.sent >= down} == {503}, "while it is down: 503"
    slowest = max(answer.seconds for answer in load.since(stopped) if answer.sent < restarting)
    assert slowest < 3, f"no hang while the database is down (slowest answer {slowest:.1f} s)"
    assert all(answer.status == 200 for answer in load.since(back + 1)), "recovered for good"


def test_every_connection_of_the_gateway_cut(
    server: PostgresServer, git_repo: GitPartnerRepo, tmp_path: Path, receiver: tuple[HttpRecorder, str]
) -> None:
    db = new_database(server)
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", db.url, "--dev-allow-loopback-webhooks"))
    credentials = onboarded_acme(installation, receiver[1])
    with gateway_process(installation, db, tmp_path / "gateway.log") as url:
        wait_for(lambda: listening(db) == 1, timeout=10, what="the gateway listens for changes")
        # Handshakes write (under the writer lock): several at once fill the gateway's pool.
        token = token_for(url, credentials).json()["access_token"]
        with ThreadPoolExecutor(8) as pool:
            pings = list(pool.map(lambda _: httpx.get(f"{url}/v1/ping", headers={"authorization": f"Bearer {token}"},
                                                      timeout=20).status_code, range(16)))  # fmt: skip
        assert pings == [200] * 16
        pooled = db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND pid <> pg_backend_pid()")[0][0]  # fmt: skip
        assert pooled >= 3, "the listener and several pooled connections"

        assert terminate_all(db) >= pooled
        # Nothing was in flight: nothing fails. The next requests find every pooled connection gone.
        answers = [token_for(url, credentials).status_code for _ in range(30)]
        with ThreadPoolExecutor(8) as pool:
            answers += list(pool.map(lambda _: httpx.get(f"{url}/v1/ping", headers={"authorization": f"Bearer {token}"},
                                                         timeout=20).status_code, range(16)))  # fmt: skip
        assert answers == [200] * 46

        wait_for(lambda: listening(db) == 1, timeout=10, what="the change listener reconnects")

        load = Load(url, credentials)  # the same under load: at most what is in flight fails
        try:
            wait_for(lambda: len(load.answers) >= 20, timeout=10, what="the load runs")
            cut = time.monotonic()
            terminate_all(db)
            wait_for(lambda: listening(db) == 1 and len(load.since(cut + 1)) >= 40, timeout=10,
                     what="the listener back, and answers after it")  # fmt: skip
        finally:
            load.stop()
        failed = [answer for answer in load.since(cut - 1) if answer.status != 200]
        assert {answer.status for answer in failed} <= {503} and all(answer.retry_after for answer in failed)
        assert len(failed) <= len(load.clients), "only requests in flight when the connections were cut"

        installation.repo.write_partner(edit(PARTNER.replace("https://hooks.acme-bank.example/scp",
                                                             f"{receiver[1]}/acme-bank"), "suspended: false",
                                             "suspended: true"))  # fmt: skip
        installation.repo.commit("Suspend ACME")
        installation.apply()
        suspended = time.monotonic()
        wait_for(lambda: token_for(url, credentials).status_code == 401, timeout=5,
                 what="the suspension reaches the gateway")  # fmt: skip
        assert time.monotonic() - suspended < 1, "within a second: heard, not polled"


def test_a_writer_whose_lock_was_cut_cannot_overwrite_the_next_writer(server: PostgresServer) -> None:
    db = new_database(server)
    partners = [PostgresPartners(Database(db.admin)) for _ in range(2)]
    first, second = (PostgresJournal(store.database, partners=store) for store in partners)
    now = datetime.fromisoformat(TODAY)
    first.record([], [PartnerRecord(key=ACME, phase=Phase.ACTIVE)], now=now, outbox_cursor=None)
    try:
        # Read, change, record under the lock: a lost update if another writer got in between.
        with pytest.raises(StoreUnavailable), first.exclusive():
            stale = partners[0].partner(ACME)
            assert stale is not None
            terminate_all(db)
            with second.exclusive(timeout=2):  # the lock went with its connection: the next writer has it
                current = partners[1].partner(ACME)
                assert current is not None
                current.handshake_at = TODAY
                second.record([], [current], now=now, outbox_cursor=None)
            stale.last_check_at = TODAY
            first.record([], [stale], now=now, outbox_cursor=None)  # without the lock: must not be written
        stored = partners[1].partner(ACME)
        assert stored is not None and stored.handshake_at == TODAY, "the second writer's change is not lost"
    finally:
        for store in partners:
            store.close()


def test_a_running_dispatcher_records_its_pass_once_the_database_is_back(
    server: PostgresServer, git_repo: GitPartnerRepo, tmp_path: Path
) -> None:
    """A long-running worker keeps what it sent while the database was away and records it first when it
    returns: nothing is sent twice, and nothing waits for a claim to run out."""
    db = new_database(server)
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", db.url, "--dev-allow-loopback-webhooks"))
    receiver = GatedReceiver(gate=550)
    hooks = receiver.start()
    try:
        installation.onboard(*HOOKED, hooks=hooks)
        with apps.stores(installation.home, state=db.url) as stores:
            for _ in range(EVENTS):
                publish(stores, "payment.status.changed", EVENT, now=clock.now())
        command = [PARTNERCTL, "--home", str(installation.home), "--state", db.url, "--dev-allow-loopback-webhooks",
                   "dispatch", "--interval", "1"]  # fmt: skip
        worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert receiver.reached.wait(60), "the worker reached its second pass"
            server.stop()
            receiver.release()
            time.sleep(1.5)  # the worker fails to record, reports it and waits its interval
            server.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if db.query("SELECT DISTINCT status FROM deliveries") == [("delivered",)]:
                    break
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=60)
    finally:
        receiver.stop()
    assert worker.returncode == 0, stderr
    assert "unavailable" in stderr and "retrying" in stderr and "Traceback" not in stderr
    assert db.query("SELECT DISTINCT status FROM deliveries") == [("delivered",)]
    received = Counter(receiver.received)
    assert len(received) == EVENTS * len(HOOKED) and set(received.values()) == {1}, "each message exactly once"
