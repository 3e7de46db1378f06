"""Several processes, one PostgreSQL database, one truth: appends from four writers make one chain,
two dispatcher workers send each message once, and two gateways both refuse a suspended partner
within a second."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from reconciler.backends.postgresql.database import Database
from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners
from reconciler.stores.audit import verify
from reconciler.stores.records import DeliveryRow, StoredEvent
from reconciler.vocabulary import DeliveryStatus
from tests.support.apps import token_for
from tests.support.engine import Installation
from tests.support.processes import PARTNERCTL, GatewayProcess
from tests.support.repo import PARTNER, TENANT, edit
from tests.support.servers import HttpRecorder

ACME = f"{TENANT}/acme-bank"

APPENDER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from reconciler.backends.postgresql.database import Database
    from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners
    from reconciler.stores.records import AuditEvent
    from reconciler.vocabulary import Event

    url, writer = sys.argv[1], sys.argv[2]
    records = PostgresPartners(Database(url, max_size=1))
    journal = PostgresJournal(records.database, partners=records)
    for number in range(1000):
        event = AuditEvent(Event.PARTNER_UPDATED, f"t/{writer}", {"writer": writer, "n": number})
        journal.record([event], [], now=datetime.now(UTC), outbox_cursor=None)
    records.close()
""")


def test_four_processes_appending_at_once_make_one_chain(postgres_url: str) -> None:
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, postgres_url, f"w{n}"]) for n in range(4)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]

    records = PostgresPartners(Database(postgres_url))
    journal = PostgresJournal(records.database, partners=records)
    entries = list(journal.audit_entries())
    verdict = verify(entries, journal.audit_head())
    assert verdict.intact and verdict.entries == 4000 and journal.audit_head().seq == 4000
    for writer in ("w0", "w1", "w2", "w3"):
        mine = [entry["details"]["n"] for entry in entries if entry["details"]["writer"] == writer]
        assert mine == list(range(1000)), "each writer's events, all of them, in its order"
    records.close()


def test_two_dispatchers_send_each_message_exactly_once(
    postgres_installation: Installation, postgres_url: str, receiver: tuple[HttpRecorder, str]
) -> None:
    recorder, url = receiver
    postgres_installation.onboard(hooks=url)
    recorder.requests.clear()  # the connectivity check's ping
    records = PostgresPartners(Database(postgres_url))
    journal = PostgresJournal(records.database, partners=records)
    for batch in range(100):
        event = StoredEvent(f"evt_{batch}", "payment.status.changed", {"payment_id": f"p-{batch}", "status": "paid"},
                            "2026-11-28T12:00:00+00:00")  # fmt: skip
        journal.enqueue(event, [DeliveryRow(0, event.id, ACME, "payment-events", f"msg_{batch}_{n}",
                                            DeliveryStatus.PENDING, 0, 0.0) for n in range(100)])  # fmt: skip
    command = [PARTNERCTL, "--home", str(postgres_installation.home), "--state", postgres_url,
               "--dev-allow-loopback-webhooks", "dispatch", "--once"]  # fmt: skip
    workers = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read() if worker.stderr else ""

    sent = Counter(request.headers["webhook-id"] for request in recorder.requests)
    assert len(sent) == 10_000 and set(sent.values()) == {1}, "every message, each exactly once"
    statuses = Counter(row.status for row in journal.deliveries())
    assert statuses == {DeliveryStatus.DELIVERED: 10_000}
    records.close()


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def gateways(postgres_installation: Installation) -> Iterator[list[GatewayProcess]]:
    postgres_installation.onboard()
    started = [GatewayProcess(postgres_installation), GatewayProcess(postgres_installation)]
    yield started
    for gateway in started:
        gateway.stop()


def test_a_narrowing_reaches_every_gateway_within_a_second(
    postgres_installation: Installation, gateways: list[GatewayProcess]
) -> None:
    """Only the partner record changes (no credential does): the gateways hear of it through NOTIFY."""
    credentials = postgres_installation.deliver(ACME)
    tokens = [token_for(gateway.url, credentials).json()["access_token"] for gateway in gateways]

    def report(gateway: GatewayProcess, token: str) -> int:
        return httpx.post(f"{gateway.url}/v1/payments/p-1/status", json={"state": "paid"},
                          headers={"authorization": f"Bearer {token}"}).status_code  # fmt: skip

    assert [report(gateway, token) for gateway, token in zip(gateways, tokens, strict=True)] != [403, 403]
    postgres_installation.repo.write_partner(edit(PARTNER, "    - payment:status:update\n", ""))
    postgres_installation.repo.commit("Narrow ACME")
    postgres_installation.apply()
    applied = time.monotonic()
    for gateway, token in zip(gateways, tokens, strict=True):
        eventually(lambda gateway=gateway, token=token: report(gateway, token) == 403, "the narrowing", timeout=5)
    assert time.monotonic() - applied < 1.0, "both gateways enforced the narrowed scopes within one second"


def test_a_suspension_reaches_every_gateway_within_a_second(
    postgres_installation: Installation, gateways: list[GatewayProcess]
) -> None:
    credentials = postgres_installation.deliver(ACME)
    tokens = []
    for gateway in gateways:
        answer = token_for(gateway.url, credentials)
        assert answer.status_code == 200, answer.text
        tokens.append(answer.json()["access_token"])
        assert httpx.get(f"{gateway.url}/v1/ping", headers={"authorization": f"Bearer {tokens[-1]}"}).status_code == 200

    postgres_installation.repo.write_partner(edit(PARTNER, "suspended: false", "suspended: true"))
    postgres_installation.repo.commit("Suspend ACME")
    postgres_installation.apply()
    applied = time.monotonic()

    def refused(gateway: GatewayProcess, token: str) -> Callable[[], bool]:
        bearer = {"authorization": f"Bearer {token}"}
        return lambda: httpx.get(f"{gateway.url}/v1/ping", headers=bearer).status_code == 401

    for gateway, token in zip(gateways, tokens, strict=True):
        eventually(refused(gateway, token), "the suspension to reach the gateway", timeout=5)
    assert time.monotonic() - applied < 1.0, "both gateways refused the suspended partner within one second"
    assert token_for(gateways[1].url, credentials).status_code == 401
