"""Rate limits at the gateway (DESIGN §7): a partner's token bucket on the token endpoint and the API
routes, failed client authentications per client id, 429 with Retry-After, and the IETF RateLimit-Policy
and RateLimit fields on every answer to an identified partner or client id; 503 when the shared store is down."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from reconciler.errors import StoreUnavailable
from reconciler.gateway import Gateway
from reconciler.stores import Stores
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.repo import TENANT
from tests.support.servers import UvicornThread

ACME = f"{TENANT}/acme-bank"
# RateLimit: "policy";r=REMAINING;t=SECONDS (draft-ietf-httpapi-ratelimit-headers)
FIELD = re.compile(r'^"(?P<policy>[a-z-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def token_response(onboarded: Onboarded, secret: str | None = None, credentials: dict[str, Any] | None = None,
                   ) -> httpx.Response:  # fmt: skip
    creds = credentials or onboarded.credentials
    return httpx.post(f"{onboarded.gateway.url}/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(creds["client_id"], secret or creds["client_secret"]))  # fmt: skip


def ping(onboarded: Onboarded, token: str) -> httpx.Response:
    return httpx.get(f"{onboarded.gateway.url}/v1/ping", headers={"Authorization": f"Bearer {token}"})


def state(response: httpx.Response) -> tuple[str, int, int]:
    """The RateLimit field's policy, remaining requests and seconds until the bucket is full."""
    match = FIELD.match(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return match["policy"], int(match["r"]), int(match["t"])


def test_a_burst_above_the_limit_gets_429s_with_the_headers(onboarded: Onboarded) -> None:
    onboarded.installation.limit(per_minute=6, burst=5)  # a token every 10 s
    first = token_response(onboarded)
    assert first.status_code == 200
    access = first.json()["access_token"]
    answers = [first] + [ping(onboarded, access) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200] * 5, "the token endpoint and the API share one bucket"
    assert {answer.headers["ratelimit-policy"] for answer in answers} == {'"partner";q=5;w=50'}
    assert [state(answer)[1] for answer in answers] == [4, 3, 2, 1, 0]
    for refused in (ping(onboarded, access), token_response(onboarded),
                    httpx.get(f"{onboarded.gateway.url}/v1/payments/p-1/status",
                              headers={"Authorization": f"Bearer {access}"})):  # fmt: skip
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        assert refused.headers["ratelimit-policy"] == '"partner";q=5;w=50'
        assert state(refused)[:2] == ("partner", 0)
    assert onboarded.upstream.requests == [], "nothing over the limit is forwarded"


def test_below_the_limit_nothing_is_refused_and_every_answer_says_where_it_stands(onboarded: Onboarded) -> None:
    """The defaults: 600 a minute, bursts of 100."""
    tokens = [token_response(onboarded) for _ in range(20)]
    bearer = {"Authorization": f"Bearer {tokens[0].json()['access_token']}"}
    decision = {**bearer, "X-Original-Method": "GET", "X-Original-URI": "/v1/payments/9/status"}
    api = [httpx.get(f"{onboarded.gateway.url}/v1/ping", headers=bearer) for _ in range(20)]
    api += [httpx.get(f"{onboarded.gateway.url}/v1/payments/p-{n}/status", headers=bearer) for n in range(20)]
    api += [httpx.get(f"{onboarded.gateway.url}/authz", headers=decision) for _ in range(20)]
    api.append(httpx.get(f"{onboarded.gateway.url}/v1/beneficiaries/9", headers=bearer))
    assert {answer.status_code for answer in tokens + api[:-1]} == {200} and api[-1].status_code == 403
    for answer in tokens + api:
        assert answer.headers["ratelimit-policy"] == '"partner";q=100;w=10'
        policy, remaining, reset = state(answer)
        assert policy == "partner" and 0 < remaining <= 100 and 0 <= reset <= 10
    assert state(api[-1])[1] < state(tokens[0])[1], "each request spends one"


def test_failed_client_authentications_are_limited_per_client_id(onboarded: Onboarded, beta: dict[str, Any]) -> None:
    access = token_response(onboarded).json()["access_token"]
    failures = [token_response(onboarded, secret=f"scp_cs_guess{n}") for n in range(10)]
    assert {answer.status_code for answer in failures} == {401}
    assert {answer.headers["ratelimit-policy"] for answer in failures} == {'"failed-auth";q=10;w=60'}
    assert [state(answer)[1] for answer in failures] == list(range(9, -1, -1))
    guess = token_response(onboarded, secret="scp_cs_guess10")
    assert guess.status_code == 429 and 1 <= int(guess.headers["retry-after"]) <= 6
    assert state(guess)[:2] == ("failed-auth", 0)
    right = token_response(onboarded)
    assert right.status_code == 429, "guessing costs nothing but 429s: even the right secret waits"
    creds = (onboarded.credentials["client_id"], onboarded.credentials["client_secret"])
    for path in ("/oauth2/revoke", "/oauth2/introspect"):
        assert httpx.post(f"{onboarded.gateway.url}{path}", data={"token": access}, auth=creds).status_code == 429
    assert ping(onboarded, access).status_code == 200, "tokens already issued are not client authentications"
    other = token_response(onboarded, credentials=beta)
    assert other.status_code == 200 and state(other)[0] == "partner", "per client id"
    unknown = token_response(onboarded, credentials={"client_id": "nobody.ghost", "client_secret": "scp_cs_x"})
    assert unknown.status_code == 401 and unknown.headers["ratelimit-policy"] == '"failed-auth";q=10;w=60'


@pytest.mark.parametrize("case", ["two-methods", "no-secret"])
def test_malformed_client_authentications_count_as_failures(onboarded: Onboarded, case: str) -> None:
    creds = onboarded.credentials
    data = {"grant_type": "client_credentials", "client_id": creds["client_id"]}
    if case == "two-methods":
        data["client_secret"] = creds["client_secret"]
    auth = (creds["client_id"], creds["client_secret"]) if case == "two-methods" else None
    answer = httpx.post(f"{onboarded.gateway.url}/oauth2/token", data=data, auth=auth)
    assert answer.status_code == (400 if case == "two-methods" else 401)
    assert state(answer) == ("failed-auth", 9, 6)


def test_without_rate_limits_nothing_is_counted(onboarded: Onboarded) -> None:
    onboarded.installation.limit(per_minute=1, burst=1)
    app = apps.gateway(onboarded.installation.home, rate_limits=False)
    server = UvicornThread(app)
    try:
        creds = (onboarded.credentials["client_id"], onboarded.credentials["client_secret"])
        answers = [httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
                   for _ in range(5)]  # fmt: skip
        answers += [httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=(creds[0], "scp_cs_wrong")) for _ in range(12)]  # fmt: skip
        assert [answer.status_code for answer in answers] == [200] * 5 + [401] * 12
        assert not any("ratelimit" in answer.headers for answer in answers)
    finally:
        server.stop()
        app.close()
        app.stores.close()


class DownJournal:
    """The installation's journal, except that what gateway replicas share has become unreachable."""

    def __init__(self, journal: Any) -> None:
        self._journal = journal

    def _down(self, *args: object, **kwargs: object) -> Any:
        raise StoreUnavailable("PostgreSQL at postgresql://gateway@db/partnerctl is unavailable: test")

    take = level = revoke_token = _down

    def __getattr__(self, name: str) -> object:
        return getattr(self._journal, name)


def test_a_shared_store_that_is_down_answers_503_with_retry_after(onboarded: Onboarded) -> None:
    stores = apps.stores(onboarded.installation.home)
    app = Gateway(Stores(stores.partners, DownJournal(stores.journal), stores.secrets), issuer=apps.ISSUER)  # type: ignore[arg-type]
    server = UvicornThread(app)
    try:
        creds = (onboarded.credentials["client_id"], onboarded.credentials["client_secret"])
        access = token_response(onboarded).json()["access_token"]  # from the fixture's gateway
        answers = [
            httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds),
            httpx.post(f"{server.url}/oauth2/revoke", data={"token": access}, auth=creds),
            httpx.get(f"{server.url}/v1/ping", headers={"Authorization": f"Bearer {access}"}),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "temporarily_unavailable" and answer.headers["retry-after"] == "5"
    finally:
        server.stop()
        app.close()
        stores.close()
