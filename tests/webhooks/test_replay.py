"""Replaying webhook deliveries (DESIGN §8): a window of failed and held messages goes out again with its
original webhook-id, shaped against the partner's scopes as they are now, after live traffic, audited."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook

from reconciler.vocabulary import DeliveryStatus
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.repo import TENANT, edit
from tests.support.servers import Recorded
from tests.webhooks.test_dispatcher import ACME, EVENT, at, deliveries, delivery_rows, publish

SHORT = (0, 5)  # two attempts, then failed: an hour's outage leaves its messages failed, not pending


def dispatch(onboarded: Onboarded, **options: int) -> int:
    dispatcher = apps.dispatcher(onboarded.installation.home, schedule=SHORT, **options)  # type: ignore[arg-type]
    try:
        return asyncio.run(dispatcher.run_once())
    finally:
        dispatcher.stores.close()


def flagged_on_failure(onboarded: Onboarded) -> None:
    """The tenant's webhooks are flagged, not deactivated, after repeated failures: an outage stays replayable."""
    repo = onboarded.installation.repo
    policy = repo.root / f"policies/{TENANT}.yaml"
    repo.write(f"policies/{TENANT}.yaml", edit(policy.read_text(), "onFailure: deactivate", "onFailure: flag"))


def outage(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch, messages: int) -> None:
    """``messages`` published while the receiver answers 503, each failed after its two attempts."""
    flagged_on_failure(onboarded)
    onboarded.installation.repo.commit("flag failing webhooks")
    onboarded.installation.apply()
    onboarded.receiver.status = 503
    for _ in range(messages):
        publish(onboarded)
        dispatch(onboarded)
    at(monkeypatch, "2026-11-28T12:00:10Z")
    dispatch(onboarded)


def personal_data_ngo(onboarded: Onboarded) -> None:
    """ACME as an NGO cleared for personal data (it receives beneficiary_name), flagged rather than deactivated."""
    repo = onboarded.installation.repo
    path = repo.root / f"partners/{TENANT}/acme-bank.yaml"
    text = edit(path.read_text(), "type: bank", "type: ngo")
    scopes = "    - payment:status:read\n"
    repo.write_partner(edit(text, scopes, scopes + "    - beneficiary:read:personal\n"))
    flagged_on_failure(onboarded)
    repo.commit("ACME is an NGO cleared for personal data")
    onboarded.installation.apply()


def narrow(onboarded: Onboarded) -> None:
    repo = onboarded.installation.repo
    path = repo.root / f"partners/{TENANT}/acme-bank.yaml"
    repo.write_partner(edit(path.read_text(), "    - beneficiary:read:personal\n", ""))
    repo.commit("ACME no longer sees personal data")
    onboarded.installation.apply()


def replay(onboarded: Onboarded, *args: str) -> dict[str, object]:
    result = onboarded.installation.run("--output", "json", "webhooks", "replay", ACME, *args)
    assert result.exit_code == 0, result
    document: dict[str, object] = result.json()
    return document


def ids(requests: list[Recorded]) -> list[str]:
    return [request.headers["webhook-id"] for request in requests]


def test_a_replay_of_an_outage_sends_every_missed_message_once_more_without_what_was_narrowed(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    personal_data_ngo(onboarded)
    at(monkeypatch, "2026-11-28T11:50:00Z")
    publish(onboarded, {**EVENT, "payment_id": "before"})
    dispatch(onboarded)
    before = ids(deliveries(onboarded))
    assert len(before) == 1, "delivered before the outage"

    onboarded.receiver.status = 503  # down from 12:00 to 13:00
    for minute in (0, 20, 40, 55):
        at(monkeypatch, f"2026-11-28T12:{minute:02d}:00Z")
        publish(onboarded, {**EVENT, "payment_id": f"p-{minute}"})
        dispatch(onboarded)
        at(monkeypatch, f"2026-11-28T12:{minute:02d}:10Z")
        dispatch(onboarded)
    missed = deliveries(onboarded)[1:]
    assert all(b"Ana Banda" in request.body for request in missed), "cleared for personal data at the time"
    assert {row.status for row in delivery_rows(onboarded)} == {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}

    at(monkeypatch, "2026-11-28T13:05:00Z")
    onboarded.receiver.status = 200
    narrow(onboarded)
    publish(onboarded, {**EVENT, "payment_id": "after"})  # live, outside the window
    sent = len(onboarded.receiver.requests)
    done = replay(onboarded, "--since", "2026-11-28T12:00:00Z", "--until", "2026-11-28T13:00:00Z")
    assert done["replayed"] == 4 and done["webhooks"] == {"payment-events": 4}
    assert dispatch(onboarded, batch=10, per_endpoint=1) == 5, "the live message and four replayed"
    assert dispatch(onboarded) == 0, "each once"

    again = [r for r in onboarded.receiver.requests[sent:] if b'"type":"payment.status.changed"' in r.body]
    assert sorted(ids(again)) == sorted(set(ids(missed)) | set(ids(again)[:1])), "the original webhook-ids"
    assert ids(again)[0] not in ids(missed), "the live message went first"
    secret = onboarded.credentials["webhook_secrets"]["payment-events"]
    replayed = {request.headers["webhook-id"]: Webhook(secret).verify(request.body, request.headers)
                for request in again[1:]}  # fmt: skip
    assert set(replayed) == set(ids(missed))
    assert sorted(payload["data"]["paymentReference"] for payload in replayed.values()) == [
        "p-0", "p-20", "p-40", "p-55"]  # fmt: skip
    assert all("beneficiary_name" not in payload["data"] for payload in replayed.values()), "narrowed since"

    log = onboarded.installation.run("--output", "json", "webhooks", "deliveries", ACME, "--status", "delivered")
    assert {entry["eventId"] for entry in log.json()["deliveries"]} >= set(ids(missed)), "the log shows them"
    [audited] = [entry for entry in onboarded.installation.audit() if entry["event"] == "webhook.replayed"]
    assert audited["details"] == {"name": "payment-events", "count": 4, "since": "2026-11-28T12:00:00+00:00",
                                  "until": "2026-11-28T13:00:00+00:00", "includeDelivered": False}  # fmt: skip
    assert audited["actor"].startswith("cli:")

    everything = replay(onboarded, "--since", "2026-11-28T11:00:00Z", "--until", "2026-11-28T13:10:00Z",
                        "--include-delivered")
    assert everything["replayed"] == 6, "with --include-delivered, every delivery of the window"


def test_live_deliveries_go_before_replayed_ones(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass takes every live delivery first and fills what is left of the batch with
    replays; a replayed delivery that fails again stays in the replay lane."""
    outage(onboarded, monkeypatch, 3)
    assert replay(onboarded, "--since", "1h")["replayed"] == 3
    publish(onboarded)
    publish(onboarded)
    onboarded.receiver.status = 200
    assert dispatch(onboarded, batch=3) == 3, "two live, and one replayed: what the live ones left of the batch"
    lanes = sorted(str(row.status) for row in delivery_rows(onboarded))
    assert lanes == ["delivered"] * 3 + ["replaying"] * 2

    onboarded.receiver.status = 500
    dispatch(onboarded, batch=3)
    assert sorted(str(row.status) for row in delivery_rows(onboarded)) == ["delivered"] * 3 + ["replaying"] * 2, (
        "a failed replay is retried in its own lane")


def test_a_live_message_published_while_a_replay_is_sending_goes_out_next(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass sending replays takes in live deliveries as they are published, and lets them go first at the
    endpoint: a live message waits for one send, not for the rest of the replay."""
    outage(onboarded, monkeypatch, 4)
    replayed = set(ids(deliveries(onboarded)))
    assert replay(onboarded, "--since", "1h")["replayed"] == 4
    onboarded.receiver.status = 200
    sent = len(onboarded.receiver.requests)
    onboarded.receiver.gate = gate = threading.Event()  # the endpoint holds each answer until the gate opens
    passing = threading.Thread(target=dispatch, args=(onboarded,), kwargs={"per_endpoint": 1})
    passing.start()
    while len(onboarded.receiver.requests) == sent:  # until the first replayed message is in flight
        time.sleep(0.01)
    publish(onboarded)
    time.sleep(0.5)  # the pass looks for live deliveries every 50 ms
    gate.set()
    passing.join(30)
    order = ids(deliveries(onboarded)[-5:])
    assert order[0] in replayed and order[1] not in replayed, "the live message went out right after the first"
    assert set(order) - {order[1]} == replayed


def test_a_deactivated_webhook_is_not_replayed_and_the_refusal_says_how_to_recover(onboarded: Onboarded) -> None:
    onboarded.receiver.status = 410  # the partner retired the endpoint: deactivated, deliveries held
    publish(onboarded)
    dispatch(onboarded)
    result = onboarded.installation.run("webhooks", "replay", ACME, "--since", "1h", "--webhook", "payment-events")
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
    assert "deactivated" in result.stderr and "connectivity check" in result.stderr
    assert "webhook.replayed" not in onboarded.installation.events(ACME)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--since", "yesterday-ish"), "ISO 8601"),
        (("--since", "2026-11-28T12:00:00Z", "--until", "2026-11-28T11:00:00Z"), "must be before"),
        (("--since", "1h", "--webhook", "nope"), "no webhook 'nope'"),
    ],
    ids=["bad-time", "empty-window", "unknown-webhook"],
)
def test_bad_replays_are_clear_errors(onboarded: Onboarded, args: tuple[str, ...], words: str) -> None:
    result = onboarded.installation.run("webhooks", "replay", ACME, *args)
    assert result.exit_code in (1, 2) and words in result.stderr and "Traceback" not in result.stdout + result.stderr


def test_nothing_of_the_payload_reaches_the_replay_output_or_audit(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    onboarded.receiver.status = 503
    publish(onboarded)
    dispatch(onboarded)
    at(monkeypatch, "2026-11-28T12:00:10Z")
    dispatch(onboarded)  # the second and last attempt: failed
    text = onboarded.installation.run("webhooks", "replay", ACME, "--since", "1h", "--include-delivered")
    assert text.exit_code == 0 and "Replaying 1 deliveries" in text.stdout
    shown = text.stdout + json.dumps(onboarded.installation.audit())
    assert not any(str(value) in shown for value in EVENT.values())
    assert onboarded.credentials["webhook_secrets"]["payment-events"] not in shown
