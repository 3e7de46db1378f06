"""The partner self-service API (DESIGN §8): with its own token a partner reads its status and delivery log and
replays a window of at most 7 days, rate-limited; it never sees nor touches another partner's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.conftest import Onboarded
from tests.gateway.conftest import BETA
from tests.support import apps
from tests.support.repo import TENANT

ACME = f"{TENANT}/acme-bank"
EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "Ana Banda"}
HOOK = "payment-events"


def bearer(onboarded: Onboarded, credentials: dict[str, Any] | None = None) -> dict[str, str]:
    response = apps.token_for(onboarded.gateway.url, credentials or onboarded.credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def get(onboarded: Onboarded, path: str, headers: dict[str, str], **params: str) -> httpx.Response:
    return httpx.get(f"{onboarded.gateway.url}/v1/self{path}", headers=headers, params=params)


def post(onboarded: Onboarded, path: str, headers: dict[str, str], body: object) -> httpx.Response:
    return httpx.post(f"{onboarded.gateway.url}/v1/self{path}", headers=headers, content=json.dumps(body))


def failed_delivery(onboarded: Onboarded) -> str:
    """One event published at the fixture's 12:00, its only attempt failed (503): its webhook-id."""
    onboarded.receiver.status = 503
    published = onboarded.installation.run("events", "publish", "--type", "payment.status.changed",
                                           "--data", json.dumps(EVENT))  # fmt: skip
    assert published.exit_code == 0, published
    dispatcher = apps.dispatcher(onboarded.installation.home, schedule=(0,))  # type: ignore[arg-type]
    try:
        asyncio.run(dispatcher.run_once())
    finally:
        dispatcher.stores.close()
    onboarded.receiver.status = 200
    return onboarded.receiver.requests[-1].headers["webhook-id"]


def test_a_partner_reads_its_own_status(onboarded: Onboarded) -> None:
    headers = bearer(onboarded)
    before = get(onboarded, "", headers)
    assert before.status_code == 200, before.text
    assert (before.json()["partner"], before.json()["phase"]) == (ACME, "AWAITING_HANDSHAKE")
    assert httpx.get(f"{onboarded.gateway.url}/v1/ping", headers=headers).status_code == 200
    status = get(onboarded, "", headers).json()
    assert (status["phase"], status["health"]) == ("ACTIVE", "HEALTHY"), "its handshake, seen at once"
    assert [hook["name"] for hook in status["webhooks"]] == [HOOK] and status["webhooks"][0]["state"] == "active"
    assert status["credential"]["clientId"] == onboarded.credentials["client_id"]
    assert {"health", "conditions", "scopes", "lastSuccessfulSync"} <= set(status)
    assert "approval" not in status, "who approved it, and at which revision, stays internal"
    assert before.headers["cache-control"] == "no-store" and "ratelimit" in before.headers


def test_a_partner_reads_and_replays_its_own_deliveries(onboarded: Onboarded) -> None:
    message = failed_delivery(onboarded)
    headers = bearer(onboarded)
    log = get(onboarded, f"/webhooks/{HOOK}/deliveries", headers, status="failed")
    assert log.status_code == 200, log.text
    [entry] = log.json()["deliveries"]
    assert (entry["eventId"], entry["status"], entry["httpStatus"]) == (message, "failed", 503)
    assert not any(str(value) in log.text for value in EVENT.values()), "nothing of the payload"

    replayed = post(onboarded, f"/webhooks/{HOOK}/replay", headers, {"since": "2026-11-28T11:00:00Z"})
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replayed"] == 1
    assert replayed.headers["ratelimit-policy"].count(";q=") == 2, "the partner's limit and the replay limit"
    dispatcher = apps.dispatcher(onboarded.installation.home)
    try:
        assert asyncio.run(dispatcher.run_once()) == 1
    finally:
        dispatcher.stores.close()
    assert onboarded.receiver.requests[-1].headers["webhook-id"] == message, "sent again with its webhook-id"
    [audited] = [entry for entry in onboarded.installation.audit() if entry["event"] == "webhook.replayed"]
    assert audited["actor"] == f"partner:{onboarded.credentials['client_id']}" and audited["details"]["count"] == 1


def test_a_partner_cannot_see_or_replay_another_partners_deliveries(
    onboarded: Onboarded, beta: dict[str, Any]
) -> None:
    failed_delivery(onboarded)  # to both partners' webhooks (Beta's is at ACME's receiver)
    theirs = bearer(onboarded, beta)
    log = get(onboarded, f"/webhooks/{HOOK}/deliveries", theirs).json()["deliveries"]
    mine = get(onboarded, f"/webhooks/{HOOK}/deliveries", bearer(onboarded)).json()["deliveries"]
    assert len(log) == len(mine) == 1 and log[0]["eventId"] != mine[0]["eventId"], "each sees its own only"
    assert get(onboarded, "", theirs).json()["partner"] == BETA
    for path in (f"/{ACME}/webhooks/{HOOK}/deliveries", f"/webhooks/{HOOK}/deliveries/../../{ACME}"):
        assert get(onboarded, path, theirs).status_code == 404, path
    replayed = post(onboarded, f"/webhooks/{HOOK}/replay", theirs, {"since": "2026-11-28T11:00:00Z"})
    assert replayed.json()["replayed"] == 1, "Beta's own failed delivery, not ACME's"
    with apps.stores(onboarded.installation.home) as stores:
        assert {row.partner: row.status for row in stores.journal.deliveries()} == {ACME: "failed", BETA: "replaying"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/webhooks/nope/deliveries", None, 404, "no webhook 'nope'"),
        ("GET", f"/webhooks/{HOOK}/deliveries?status=lost", None, 400, "status is one of"),
        ("GET", f"/webhooks/{HOOK}/deliveries?limit=0", None, 400, "limit"),
        ("POST", f"/webhooks/{HOOK}/replay", {"since": "2026-11-01T00:00:00Z"}, 400, "at most 7 days"),
        ("POST", f"/webhooks/{HOOK}/replay", {"since": "last week"}, 400, "ISO 8601"),
        ("POST", f"/webhooks/{HOOK}/replay", ["not", "an", "object"], 400, '{"since"'),
        ("DELETE", "", None, 404, "not a self-service route"),
    ],
    ids=["unknown-webhook", "bad-status", "bad-limit", "longer-than-7-days", "bad-time", "bad-body", "bad-method"],
)
def test_bad_requests_are_clear_refusals(
    onboarded: Onboarded, method: str, path: str, body: object, status: int, words: str
) -> None:
    answer = httpx.request(method, f"{onboarded.gateway.url}/v1/self{path}", headers=bearer(onboarded),
                           content=None if body is None else json.dumps(body))  # fmt: skip
    assert answer.status_code == status and words in answer.json()["error_description"], answer.text


def test_without_a_valid_token_nothing_is_shown(onboarded: Onboarded) -> None:
    assert get(onboarded, "", {}).status_code == 401
    assert get(onboarded, "", {"Authorization": "Bearer forged"}).status_code == 401
    assert post(onboarded, f"/webhooks/{HOOK}/replay", {}, {"since": "2026-11-28T11:00:00Z"}).status_code == 401


def test_replays_are_rate_limited(onboarded: Onboarded) -> None:
    headers = bearer(onboarded)
    answers = [post(onboarded, f"/webhooks/{HOOK}/replay", headers, {"since": "2026-11-28T11:00:00Z"})
               for _ in range(4)]  # fmt: skip
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert sum(entry["event"] == "webhook.replayed" for entry in onboarded.installation.audit()) == 3
