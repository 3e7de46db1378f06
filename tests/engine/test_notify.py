"""Notifications (DESIGN §12): alerts from the audit chain and the apply, once per interval, as Slack or
CloudEvents 1.0 JSON, never a secret or personal data, never slowing or failing an apply, SSRF-checked URLs."""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.engine.executor import Result
from reconciler.stores.records import AuditEvent
from reconciler.vocabulary import Event
from reconciler.webhooks.alerts import Alert, Collector
from reconciler.webhooks.notify import Channel, target
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.cli import Result as Run
from tests.support.engine import Installation
from tests.support.leaks import assert_nowhere
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder, Recorded, free_port
from tests.webhooks.test_dispatcher import dispatch, publish

ACME = f"{TENANT}/acme-bank"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# What an alert may carry in ``data``: ids, event names, webhook names, counts, codes (DESIGN §12).
DATA_KEYS = {"partner", "event", "webhook", "code", "failures", "count", "requiredScopes", "action", "revision",
             "reason", "pendingSince", "pendingHours", "dueAt", "error"}  # fmt: skip


def apply(onboarded: Onboarded, *urls: str) -> Run:
    notify = [argument for url in urls for argument in ("--notify", url)]
    result = onboarded.installation.run("--output", "json", "apply", *notify)
    assert result.exit_code == 0, result
    return result


def deactivate(onboarded: Onboarded) -> None:
    """The partner's endpoint answers 410 to a delivery: LOG-01 deactivates the webhook (audited by the
    dispatcher). The endpoint is back afterwards, so the next apply's connectivity check recovers it."""
    onboarded.receiver.status = 410
    publish(onboarded)
    dispatch(onboarded)
    onboarded.receiver.status = 200


def bodies(recorder: HttpRecorder) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in recorder.requests]


def assert_valid_cloudevent(request: Recorded) -> dict[str, Any]:
    """CloudEvents 1.0, structured JSON mode: the required attributes, lowercase attribute names, RFC 3339 time."""
    assert request.headers["content-type"] == "application/cloudevents+json"
    event = json.loads(request.body)
    for required in ("id", "source", "specversion", "type"):
        assert isinstance(event[required], str) and event[required], required
    assert event["specversion"] == "1.0"
    assert all(re.fullmatch(r"[a-z0-9]+", name) for name in event)
    assert RFC3339.match(event["time"]), event["time"]
    datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    assert event["datacontenttype"] == "application/json"
    assert set(event["data"]) <= DATA_KEYS
    return dict(event)


def test_a_deactivation_is_alerted_once_per_interval(
    onboarded: Onboarded, receiver: tuple[HttpRecorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts, url = receiver
    deactivate(onboarded)
    apply(onboarded, url)
    [alert] = bodies(alerts)
    assert set(alert) == {"text"}  # Slack-compatible
    assert "payment-events" in alert["text"] and ACME in alert["text"] and "deactivated" in alert["text"]

    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:30:00Z")  # it happens again within the hour
    deactivate(onboarded)
    apply(onboarded, url)
    assert len(alerts.requests) == 1

    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T13:15:00Z")  # and again after it
    deactivate(onboarded)
    apply(onboarded, url)
    assert len(alerts.requests) == 2
    apply(onboarded, url)  # nothing new in the audit chain: nothing sent
    assert len(alerts.requests) == 2


def test_cloudevents_attributes_are_valid_and_each_url_gets_its_format(
    onboarded: Onboarded, receiver: tuple[HttpRecorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts, url = receiver
    monkeypatch.setenv("PARTNERCTL_NOTIFY", f"{url}/events?format=cloudevents&team=ops {url}/chat")
    deactivate(onboarded)
    apply(onboarded)
    [cloud] = [request for request in alerts.requests if request.path.startswith("/events")]
    [chat] = [request for request in alerts.requests if request.path == "/chat"]
    assert cloud.path == "/events?team=ops"  # format=cloudevents is ours, not the receiver's
    event = assert_valid_cloudevent(cloud)
    assert event["type"] == "dev.scp.partnerctl.webhook.deactivated"
    assert event["source"] == "partnerctl" and event["subject"] == ACME
    assert event["data"] == {"partner": ACME, "event": "webhook.deactivated", "webhook": "payment-events",
                             "code": "LOG-01"}  # fmt: skip
    assert chat.headers["content-type"] == "application/json" and set(json.loads(chat.body)) == {"text"}


def test_alerts_hold_no_secret_and_no_personal_data(
    onboarded: Onboarded, receiver: tuple[HttpRecorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    alerts, url = receiver
    deactivate(onboarded)  # the event published holds beneficiary_name "Ana Banda"
    access = apps.token_for(onboarded.gateway.url, onboarded.credentials).json()["access_token"]
    for _ in range(3):  # a burst of denied access: one alert with the count
        denied = httpx.get(f"{onboarded.gateway.url}/v1/beneficiaries/42",
                           headers={"Authorization": f"Bearer {access}"})  # fmt: skip
        assert denied.status_code == 403
    assert onboarded.installation.run("credentials", "deliver", ACME).exit_code == 1  # refused: already picked up
    apply(onboarded, f"{url}/ce?format=cloudevents", f"{url}/slack")

    cloud = [assert_valid_cloudevent(request) for request in alerts.requests if request.path == "/ce"]
    events = {event["type"].removeprefix("dev.scp.partnerctl."): event for event in cloud}
    assert set(events) == {"webhook.deactivated", "access.denied", "credential.delivery_refused"}
    assert events["access.denied"]["data"] == {"partner": ACME, "event": "access.denied", "code": "PRIV-01",
                                               "count": 3, "requiredScopes": ["beneficiary:read:personal"]}  # fmt: skip
    assert len([r for r in alerts.requests if r.path == "/slack"]) == 3
    credentials = onboarded.credentials
    issued = [credentials["client_secret"], *credentials["webhook_secrets"].values()]
    sent = {f"alert {index}": request.body for index, request in enumerate(alerts.requests)}
    assert_nowhere(issued, sent | {"log": caplog.text.encode()})
    for personal in ("jane@acme-bank.example", "Jane Doe", "Ana Banda", "beneficiaries/42", "p-1",
                     credentials["client_id"]):  # fmt: skip
        assert all(personal.encode() not in body for body in sent.values()), personal


def test_a_failing_receiver_never_fails_the_apply_and_is_retried(
    onboarded: Onboarded, receiver: tuple[HttpRecorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    alerts, url = receiver
    alerts.status = 503
    unreachable = f"http://127.0.0.1:{free_port()}/hook"
    deactivate(onboarded)
    with caplog.at_level(logging.WARNING, logger="reconciler.webhooks.notify"):
        result = apply(onboarded, f"{url}?format=cloudevents", unreachable)
    assert result.json()["results"]  # the apply's own answer, unchanged
    assert len(alerts.requests) >= 2  # retried with backoff while the command finished
    assert len({json.loads(request.body)["id"] for request in alerts.requests}) == 1  # the same event each time
    assert "http://127.0.0.1:" in caplog.text and "not delivered" in caplog.text
    assert "/hook" not in caplog.text  # a notify URL is shown by its host only


@pytest.mark.parametrize(
    "url",
    ["https://10.1.2.3/services/T0/B0/s3cr3tpath", "https://metadata.google.internal/s3cr3tpath",
     "http://hooks.example.com/s3cr3tpath", "https://[::ffff:127.0.0.1]/s3cr3tpath"],
    ids=["private-address", "metadata", "plain-http", "mapped-loopback"],
)  # fmt: skip
def test_a_private_or_plain_notify_url_is_a_usage_error(installation: Installation, url: str) -> None:
    result = installation.run("apply", "--notify", url)
    assert result.exit_code == 2, result
    assert "--notify" in result.stderr and "SEC-01" in result.stderr and "Traceback" not in result.stderr
    assert "s3cr3tpath" not in result.stderr  # a chat service's webhook URL is its secret


def test_loopback_http_needs_the_dev_flag(installation: Installation) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    refused = installation.run("plan", "--notify", url)
    assert refused.exit_code == 2 and "--dev-allow-loopback-webhooks" in refused.stderr
    assert target(url, allow_loopback=True).url == url
    bad = installation.run("plan", "--notify", "https://hooks.example.com/x?format=xml")
    assert bad.exit_code == 2 and "format=xml" in bad.stderr
    interval = installation.run("plan", "--notify", "https://hooks.example.com/x", "--notify-interval", "soon")
    assert interval.exit_code == 2 and "--notify-interval" in interval.stderr


@pytest.mark.parametrize("state", ["sqlite", "postgresql"])
def test_failed_rotations_and_day_old_approvals_are_alerted_once_per_interval(
    tmp_path: Path, state: str, request: pytest.FixtureRequest
) -> None:
    collector = Collector(interval=timedelta(hours=1))
    start = datetime(2026, 11, 28, 12, tzinfo=UTC)
    blocked = [{"partner": ACME, "reason": "awaiting-approval", "message": "waiting for a Tenant Admin"},
               {"partner": f"{TENANT}/other", "reason": "invalid-manifest", "message": "line 3"}]  # fmt: skip
    failed = [Result(ACME, "rotate-credential", False, "StoreUnavailable: sealed"),
              Result(f"{TENANT}/zeta", "register-partner", False, "Stalled: no key"),
              Result(ACME, "update-partner", True)]  # fmt: skip

    def collect(at: timedelta, results: list[Result], pending: list[dict[str, str]]) -> list[Alert]:
        return collector.collect(stores.journal, results=results, blocked=pending, revision="a" * 40, now=start + at)

    url = request.getfixturevalue("postgres_url") if state == "postgresql" else None
    with apps.stores(tmp_path / "home", state=url) as stores:
        first = collect(timedelta(0), failed, blocked)
        assert sorted((alert.kind, alert.partner) for alert in first) == [
            ("apply.failed", f"{TENANT}/zeta"), ("rotation.failed", ACME)]  # fmt: skip
        assert "Stalled" not in json.dumps([alert.data for alert in first])  # the error text stays in the log
        assert collect(timedelta(minutes=5), failed, blocked) == []  # the same failures, within the interval
        assert [alert.kind for alert in collect(timedelta(hours=1, minutes=5), failed[:1], blocked)] == [
            "rotation.failed"]  # fmt: skip
        [pending] = collect(timedelta(days=1, hours=2), [], blocked)
        assert (pending.kind, pending.partner, pending.data["pendingHours"]) == ("approval.pending", ACME, 26)
        assert collect(timedelta(days=1, hours=2, minutes=30), [], blocked) == []
        assert collect(timedelta(days=1, hours=3), [], []) == []  # approved: forgotten
        assert collect(timedelta(days=1, hours=4), [], blocked) == []  # pending again, from now on


def test_overdue_reviews_are_alerted_from_the_audit_chain_without_their_details(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 28, 12, tzinfo=UTC)
    details = {"reviewedAt": "2026-08-01T09:00:00+00:00", "dueAt": "2026-10-30T09:00:00+00:00", "reviewDays": 90,
               "onOverdue": "suspend"}  # fmt: skip
    with apps.stores(tmp_path / "home") as stores:
        stores.journal.record([AuditEvent(Event.REVIEW_OVERDUE, ACME, details, "reconciler")], [], now=moment,
                              outbox_cursor=None)  # fmt: skip
        [alert] = Collector(interval=timedelta(hours=1)).collect(stores.journal, results=[], blocked=None,
                                                                  revision="a" * 40, now=moment)  # fmt: skip
    assert alert.data == {"partner": ACME, "event": "review.overdue", "dueAt": "2026-10-30T09:00:00+00:00"}
    assert "overdue" in alert.text and ACME in alert.text


def test_the_queue_is_bounded_and_never_waits_on_the_network(receiver: tuple[HttpRecorder, str]) -> None:
    alerts, url = receiver
    alerts.gate = threading.Event()  # the receiver holds every request until the gate opens
    channel = Channel(target(url, allow_loopback=True), allow_loopback=True, capacity=2)
    moment = datetime(2026, 11, 28, 12, tzinfo=UTC)
    for number in range(5):
        channel.put(Alert("access.denied", ACME, moment, f"alert {number}", {"partner": ACME}))
    assert channel.dropped == 3 and channel.waiting == 2
    alerts.gate.set()
    assert channel.flush(10)
    assert channel.sent == 2 and len(alerts.requests) == 2
    channel.close(0)


def test_an_apply_that_stops_early_is_alerted_without_its_error_text(
    installation: Installation, receiver: tuple[HttpRecorder, str], tmp_path: Path
) -> None:
    alerts, url = receiver
    missing = tmp_path / "no-such-repository"
    result = installation.run("--repo", str(missing), "--dev-allow-loopback-webhooks", "--approval", "none",
                              "apply", "--notify", f"{url}/ce?format=cloudevents")  # fmt: skip
    assert result.exit_code != 0
    [request] = alerts.requests
    event = assert_valid_cloudevent(request)
    assert event["type"] == "dev.scp.partnerctl.apply.failed" and "subject" not in event
    assert set(event["data"]) <= DATA_KEYS and event["data"]["event"] == "apply.failed"
    assert str(missing) not in request.body.decode(), "the error's text (a path) stays in the log"
