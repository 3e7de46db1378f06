"""The console over HTTP (DESIGN §13): its pages and their JSON, who sees what, and what never shows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import Onboarded
from tests.support import apps
from tests.support.engine import Installation
from tests.support.html import References
from tests.support.leaks import assert_nowhere
from tests.support.repo import PARTNER, TENANT, edit, policy_text
from tests.support.servers import UvicornThread
from tests.webhooks.test_dispatcher import dispatch, publish

ACME = f"{TENANT}/acme-bank"
ALICE, BOB = "alice@msa.example", "bob@other.example"
BOB_APPROVER = '{name: Bob Admin, email: bob@other.example, github: bob-other}'
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

Get = Callable[..., httpx.Response]


@contextmanager
def serving(installation: Installation, **options: object) -> Iterator[Get]:
    app = apps.console(installation.home, **options)  # type: ignore[arg-type]
    server = UvicornThread(app)

    def get(path: str, *, email: str | None = None, json_: bool = False) -> httpx.Response:
        headers = {"x-forwarded-email": email} if email else {}
        if json_:
            headers["accept"] = "application/json"
        return httpx.get(f"{server.url}{path}", headers=headers)

    try:
        yield get
    finally:
        server.stop()
        app.close()


def with_other_tenant(installation: Installation) -> None:
    """A second tenant, ``other``, whose approver is Bob (the console learns approvers from an apply)."""
    installation.repo.write("policies/other.yaml", policy_text("other", BOB_APPROVER))
    installation.repo.commit("Tenant other")
    installation.apply()


def test_the_partners_page_shows_each_partner_at_a_glance_and_as_json(onboarded: Onboarded) -> None:
    with serving(onboarded.installation) as get:
        page = get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert ACME in page.text and "ACME Bank" in page.text and "payment-events" in page.text
        assert "As of the last reconcile" in page.text
        answer = get("/", json_=True).json()
        [row] = answer["partners"]
        assert row["partner"] == ACME and row["phase"] == onboarded.installation.status()[ACME]["phase"]
        assert row["webhooks"] == [{"name": "payment-events", "state": "active"}]
        assert row["rotatesAt"] and row["reviewDueAt"] and row["reviewOverdue"] is False
        assert answer["reconciled"]["revision"] == onboarded.installation.repo.git.head.commit.hexsha


def test_pages_carry_a_strict_policy_and_load_nothing_from_elsewhere(onboarded: Onboarded) -> None:
    with serving(onboarded.installation) as get:
        for path in ("/", f"/partners/{ACME}", "/pending", "/report"):
            page = get(path)
            assert page.status_code == 200, path
            policy = page.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
            parsed = References()
            parsed.feed(page.text)
            assert parsed.loading == [("href", "/static/console.css")] + [
                (name, value) for name, value in parsed.loading[1:] if value.startswith(("/", "?"))], path
            assert "script" not in parsed.tags, path
            assert page.headers["x-content-type-options"] == "nosniff"
        assert get("/static/console.css").headers["content-type"].startswith("text/css")


def test_filters_narrow_the_list(onboarded: Onboarded) -> None:
    phase = onboarded.installation.status()[ACME]["phase"]
    with serving(onboarded.installation) as get:
        assert [p["partner"] for p in get(f"/?phase={phase}", json_=True).json()["partners"]] == [ACME]
        assert get("/?phase=SUSPENDED", json_=True).json()["partners"] == []
        assert get("/?health=DEGRADED", json_=True).json()["partners"] == []
        assert get("/?tenant=other", json_=True).json()["partners"] == []
        assert "No partner to show for these filters" in get("/?phase=SUSPENDED").text


def test_the_partner_page_shows_its_evidence_chart_and_audit_trail(onboarded: Onboarded) -> None:
    publish(onboarded)
    dispatch(onboarded)
    with serving(onboarded.installation) as get:
        answer = get(f"/partners/{ACME}", json_=True).json()
        assert {c["type"] for c in answer["conditions"]} >= {"Approved", "Ready", "AccessReviewed"}
        assert answer["approvals"][0]["commit"] == onboarded.installation.repo.git.head.commit.hexsha
        assert {s["name"]: s["classification"] for s in answer["scopes"]}["payment:status:read"] == "pseudonymous"
        assert answer["credential"]["method"] == "client_secret" and answer["credential"]["ageDays"] == 0
        [hook] = answer["webhooks"]
        assert len(hook["days"]) == 14 and hook["days"][-1]["delivered"] == 1 and hook["days"][-1]["failed"] == 0
        events = [entry["event"] for entry in answer["audit"]["entries"]]
        assert events[-1] == "credential.issued" and "partner.registered" in events, "newest first"
        page = get(f"/partners/{ACME}").text
        assert "<svg" in page and page.count('class="bar delivered"') == 14 and "1 delivered" in page


def test_a_viewer_sees_the_tenants_that_list_them_as_approver(onboarded: Onboarded) -> None:
    with_other_tenant(onboarded.installation)
    with serving(onboarded.installation, trusted_proxies=("127.0.0.1/32",)) as get:
        assert [p["partner"] for p in get("/", email=ALICE, json_=True).json()["partners"]] == [ACME]
        assert get("/", email="Alice@MSA.example", json_=True).json()["partners"], "emails compare case-blind"
        assert get("/", email=BOB, json_=True).json()["partners"] == [], "another tenant's viewer sees nothing of it"
        assert get(f"/partners/{ACME}", email=BOB).status_code == 403
        assert get(f"/partners/{ACME}", email=ALICE).status_code == 200
        assert get("/", email="mallory@example.org").status_code == 403, "an approver of no tenant"
        assert get("/").status_code == 403, "no sign-in at all"
        assert get("/healthz").status_code == 200
    with serving(onboarded.installation, trusted_proxies=("127.0.0.1/32",), root_approvers=frozenset({BOB})) as get:
        assert [p["partner"] for p in get("/", email=BOB, json_=True).json()["partners"]] == [ACME], "trust root: all"


def test_a_header_from_outside_the_trusted_proxy_is_ignored(onboarded: Onboarded) -> None:
    with serving(onboarded.installation, trusted_proxies=("10.0.0.0/8",)) as get:
        refused = get("/", email=ALICE)
        assert refused.status_code == 403 and "sign-in" in refused.text
        assert ACME not in refused.text


def test_pending_shows_what_is_blocked_and_who_may_approve_it(onboarded: Onboarded) -> None:
    repo = onboarded.installation.repo
    repo.write_partner(PARTNER.replace("acme-bank", "beta-bank").replace("region: eu-west", "region: us-east"),
                       name="beta-bank")  # fmt: skip
    repo.commit("Beta Bank, outside the tenant's regions")
    onboarded.installation.apply()
    with serving(onboarded.installation) as get:
        [blocked] = get("/pending", json_=True).json()["blocked"]
        assert blocked["partner"] == f"{TENANT}/beta-bank" and blocked["reason"] == "invalid-manifest"
        assert blocked["approvers"][0]["email"] == ALICE
        assert "Alice Admin" in get("/pending").text


def test_manifest_text_is_escaped_everywhere(installation: Installation) -> None:
    installation.repo.write_partner(edit(PARTNER, "displayName: ACME Bank", f"displayName: '{HOSTILE}'"))
    installation.repo.commit("A hostile display name")
    installation.apply()
    with serving(installation) as get:
        for path in ("/", f"/partners/{ACME}"):
            page = get(path).text
            assert "<script>" not in page and "<img" not in page, path
            assert "&lt;script&gt;" in page, path


def test_the_report_downloads_for_the_viewers_tenants(onboarded: Onboarded) -> None:
    with_other_tenant(onboarded.installation)
    with serving(onboarded.installation, trusted_proxies=("127.0.0.1/32",)) as get:
        page = get("/report", email=ALICE)
        assert all(f"/report.{suffix}" in page.text for suffix in ("md", "csv", "json", "html"))
        document = json.loads(get("/report.json", email=ALICE).text)
        assert [p["partner"] for p in document["partners"]] == [ACME]
        assert json.loads(get("/report.json", email=BOB).text)["partners"] == []
        download = get("/report.csv", email=ALICE)
        assert download.headers["content-disposition"].startswith("attachment;") and ACME in download.text


def test_a_page_refreshes_itself_when_asked(onboarded: Onboarded) -> None:
    with serving(onboarded.installation) as get:
        assert '<meta http-equiv="refresh" content="10">' in get("/?refresh=10").text
        assert 'http-equiv="refresh"' not in get("/").text


def test_no_page_or_answer_holds_a_secret(onboarded: Onboarded) -> None:
    publish(onboarded)
    dispatch(onboarded)
    secrets = [onboarded.credentials["client_secret"], *onboarded.credentials["webhook_secrets"].values()]
    with serving(onboarded.installation) as get:
        seen = {}
        for path in ("/", f"/partners/{ACME}", "/pending", "/report", "/report.json", "/report.html"):
            seen[path] = get(path).content
            seen[path + " (json)"] = get(path, json_=True).content
    assert_nowhere(secrets, seen)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_without_a_proxy_the_console_listens_on_loopback_only(installation: Installation, host: str) -> None:
    result = installation.run("console", "serve", "--host", host)
    assert result.exit_code == 2 and "loopback" in result.stderr
