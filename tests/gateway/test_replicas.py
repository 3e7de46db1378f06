"""Two gateway processes on one state store, as replicas behind a load balancer: a token revoked at one
stops at both within a second, and a partner's rate limit holds for both together within 10 %."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.support import apps
from tests.support.engine import Installation
from tests.support.processes import GatewayProcess, eventually
from tests.support.repo import TENANT

ACME = f"{TENANT}/acme-bank"


@pytest.fixture(params=["sqlite", "postgresql"])
def replicated(request: pytest.FixtureRequest) -> Iterator[tuple[Installation, list[GatewayProcess]]]:
    """ACME onboarded on SQLite state (one machine) or PostgreSQL (many), and two gateways serving it."""
    installation: Installation = request.getfixturevalue(f"{'postgres_' if request.param == 'postgresql' else ''}"
                                                         "installation")  # fmt: skip
    installation.onboard()
    gateways = [GatewayProcess(installation, "--issuer", apps.ISSUER) for _ in range(2)]  # replicas: one issuer
    yield installation, gateways
    for gateway in gateways:
        gateway.stop()


def test_a_revoked_token_stops_at_every_gateway_within_a_second(
    replicated: tuple[Installation, list[GatewayProcess]],
) -> None:
    installation, gateways = replicated
    credentials = installation.deliver(ACME)
    with OAuth2Client(client_id=credentials["client_id"], client_secret=credentials["client_secret"]) as oauth:
        access = oauth.fetch_token(f"{gateways[0].url}/oauth2/token", grant_type="client_credentials")["access_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        assert [httpx.get(f"{gateway.url}/v1/ping", headers=bearer).status_code for gateway in gateways] == [200, 200]
        assert oauth.revoke_token(f"{gateways[1].url}/oauth2/revoke", token=access).status_code == 200
    revoked = time.monotonic()
    for gateway in gateways:
        eventually(lambda gateway=gateway: httpx.get(f"{gateway.url}/v1/ping", headers=bearer).status_code == 401,
                   "the revocation to reach the gateway", timeout=5)  # fmt: skip
    assert time.monotonic() - revoked < 1.0, "both gateways refuse the revoked token within one second"


def test_two_gateways_together_stay_within_ten_percent_of_the_limit(
    replicated: tuple[Installation, list[GatewayProcess]],
) -> None:
    """Each replica leases a few tokens of the shared bucket at a time; together they admit the bucket's
    burst and refill, within 10 %, however the requests are spread."""
    installation, gateways = replicated
    credentials = installation.deliver(ACME)
    per_minute, burst, seconds = 1200, 100, 4.0  # 20 a second: 100 + 4 x 20 = 180 in the window
    installation.limit(per_minute=per_minute, burst=burst)
    auth = (credentials["client_id"], credentials["client_secret"])
    statuses: list[list[int]] = [[], []]
    start = time.monotonic()

    def hammer(number: int) -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - start < seconds:
                answer = client.post(f"{gateways[number].url}/oauth2/token", data={"grant_type": "client_credentials"},
                                     auth=auth)  # fmt: skip
                statuses[number].append(answer.status_code)

    clients = [threading.Thread(target=hammer, args=(number,)) for number in (0, 1)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    elapsed = time.monotonic() - start
    admitted = sum(status == 200 for answers in statuses for status in answers)
    limit = burst + per_minute / 60 * elapsed
    assert set(statuses[0] + statuses[1]) == {200, 429}
    assert all(200 in answers for answers in statuses), "both replicas admit their share"
    assert abs(admitted - limit) <= 0.1 * limit, f"{admitted} admitted for a limit of {limit:.0f}"
