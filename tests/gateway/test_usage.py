"""Scope usage at the gateway (DESIGN §12): uses per partner, scope and day and the last use, counted in memory
and written in batches (never a request log); a scope granted for unusedScopeDays and not used in that time is
shown as unused by ``partnerctl status``."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from reconciler.gateway import Gateway
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.repo import TENANT
from tests.support.servers import UvicornThread

ACME = f"{TENANT}/acme-bank"
TODAY_ISO = "2026-11-28T12:00:00+00:00"  # tests.support.repo.TODAY, as status shows it
LATER = "2027-03-08T12:00:00Z"  # 100 days on: past the default unusedScopeDays (90)
LATER_ISO = "2027-03-08T12:00:00+00:00"


def bearer(url: str, onboarded: Onboarded) -> dict[str, str]:
    response = apps.token_for(url, onboarded.credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def decide(url: str, headers: dict[str, str], method: str, path: str) -> int:
    """The auth_request decision for one request (``/authz``, as NGINX or Envoy ask it)."""
    answer = httpx.get(f"{url}/authz", headers={**headers, "X-Original-Method": method, "X-Original-URI": path})
    return answer.status_code


def scope_usage(onboarded: Onboarded) -> dict[str, dict[str, Any]]:
    """``scopeUsage`` of ACME in ``partnerctl status --output json``, by scope."""
    entry = onboarded.installation.status()[ACME]
    return {scope["name"]: {"lastUsed": scope["lastUsed"], "unused": scope["unused"]} for scope in entry["scopeUsage"]}


def flush(app: Gateway) -> None:
    assert app.usage is not None and app.usage.flush()


def test_a_scope_granted_long_enough_and_never_used_is_reported_unused(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNERCTL_NOW", LATER)
    headers = bearer(onboarded.gateway.url, onboarded)
    forwarded = httpx.get(f"{onboarded.gateway.url}/v1/payments/9/status", headers=headers)
    assert forwarded.status_code == 200, "payment:status:read, through to the upstream"
    assert decide(onboarded.gateway.url, headers, "GET", "/v1/beneficiaries/stats") == 200
    flush(onboarded.app)
    assert scope_usage(onboarded) == {
        "beneficiary:read:anonymous": {"lastUsed": LATER_ISO, "unused": False},
        "payment:status:read": {"lastUsed": LATER_ISO, "unused": False},
        "payment:status:update": {"lastUsed": None, "unused": True},
    }, "exactly the scope never used in the 100 days since it was granted"
    assert onboarded.installation.status()[ACME]["scopes"] == list(scope_usage(onboarded)), "scopes stays as it was"
    text = onboarded.installation.run("status")
    assert "Unused scopes of ministry-social-affairs/acme-bank: payment:status:update" in text.stdout


def test_nothing_is_unused_before_unused_scope_days_and_an_old_use_does_not_count(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = bearer(onboarded.gateway.url, onboarded)
    assert decide(onboarded.gateway.url, headers, "GET", "/v1/payments/9/status") == 200
    flush(onboarded.app)
    today = scope_usage(onboarded)
    assert today["payment:status:read"] == {"lastUsed": TODAY_ISO, "unused": False}
    assert not any(scope["unused"] for scope in today.values()), "granted today: nothing can be unused yet"
    monkeypatch.setenv("PARTNERCTL_NOW", LATER)
    assert scope_usage(onboarded)["payment:status:read"] == {"lastUsed": TODAY_ISO, "unused": True}, (
        "its last use is 100 days old"
    )


def test_the_token_endpoint_ping_and_refused_requests_are_no_scope_use(onboarded: Onboarded) -> None:
    url = onboarded.gateway.url
    headers = bearer(url, onboarded)
    assert httpx.get(f"{url}/v1/ping", headers=headers).status_code == 200
    assert decide(url, headers, "GET", "/v1/beneficiaries/9") == 403, "beneficiary:read:personal is not approved"
    assert decide(url, {"Authorization": "Bearer nonsense"}, "GET", "/v1/payments/9/status") == 401
    flush(onboarded.app)
    assert all(scope["lastUsed"] is None for scope in scope_usage(onboarded).values())


def test_uses_are_counted_per_day_and_survive_a_gateway_restart(onboarded: Onboarded) -> None:
    """The onboarded gateway writes every 5 s: what it counted since is written when it closes."""
    url, home = onboarded.gateway.url, onboarded.installation.home
    headers = bearer(url, onboarded)
    for _ in range(3):
        assert decide(url, headers, "GET", "/v1/payments/9/status") == 200
    onboarded.gateway.stop()
    onboarded.app.close()
    restarted = apps.gateway(home)
    server = UvicornThread(restarted)
    try:
        headers = bearer(server.url, onboarded)
        for _ in range(2):
            assert decide(server.url, headers, "GET", "/v1/payments/9/status") == 200
    finally:
        server.stop()
        restarted.close()
    usage = restarted.stores.journal.scope_usage([ACME])
    restarted.stores.close()
    assert set(usage[ACME]) == {"payment:status:read"}
    assert usage[ACME]["payment:status:read"].days == {"2026-11-28": 5}
    assert usage[ACME]["payment:status:read"].last_used == TODAY_ISO


def test_a_failed_write_keeps_the_counts_and_never_fails_a_request(onboarded: Onboarded) -> None:
    app, url = onboarded.app, onboarded.gateway.url
    assert app.usage is not None
    app.usage.flush_seconds = 0  # write on every request
    headers = bearer(url, onboarded)
    onboarded.installation.sql("state.db", "ALTER TABLE scope_last_use RENAME TO scope_last_use_away")
    assert decide(url, headers, "GET", "/v1/payments/9/status") == 200, "the store refused the write, not the request"
    assert app.usage.pending() == 1
    onboarded.installation.sql("state.db", "ALTER TABLE scope_last_use_away RENAME TO scope_last_use")
    assert decide(url, headers, "GET", "/v1/payments/9/status") == 200
    assert app.usage.pending() == 0
    assert app.stores.journal.scope_usage([ACME])[ACME]["payment:status:read"].days == {"2026-11-28": 2}


def test_no_request_path_query_or_body_is_stored(onboarded: Onboarded) -> None:
    url, home = onboarded.gateway.url, onboarded.installation.home
    headers = bearer(url, onboarded)
    read = httpx.get(f"{url}/v1/payments/pay-MARKER-4711/status?note=QUERY-MARKER", headers=headers)
    update = httpx.post(f"{url}/v1/payments/pay-MARKER-4711/status", json={"note": "BODY-MARKER"}, headers=headers)
    assert (read.status_code, update.status_code) == (200, 200)
    onboarded.gateway.stop()
    onboarded.app.close()
    with sqlite3.connect(home / "state.db") as db:
        columns = {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                   for table in ("scope_usage", "scope_last_use")}  # fmt: skip
        rows = db.execute("SELECT partner, scope, day, uses FROM scope_usage ORDER BY scope").fetchall()
    assert columns == {"scope_usage": ["partner", "scope", "day", "uses"],
                       "scope_last_use": ["partner", "scope", "last_used"]}  # fmt: skip
    assert rows == [(ACME, "payment:status:read", "2026-11-28", 1), (ACME, "payment:status:update", "2026-11-28", 1)]
    for stored in home.glob("state.db*"):
        content = stored.read_bytes()
        assert b"MARKER" not in content, f"{stored.name} holds part of a request"


def test_a_gateway_that_counts_no_usage_writes_none(onboarded: Onboarded) -> None:
    home = onboarded.installation.home
    app = Gateway(apps.stores(home), issuer=apps.ISSUER, count_usage=False)
    server = UvicornThread(app)
    try:
        headers = bearer(server.url, onboarded)
        assert decide(server.url, headers, "GET", "/v1/payments/9/status") == 200
    finally:
        server.stop()
        app.close()
        app.stores.close()
    assert app.usage is None
    assert onboarded.installation.sql("state.db", "SELECT count(*) FROM scope_usage") == [(0,)]
