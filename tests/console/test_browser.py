"""The console in a real browser (issue 18): Debian's headless Chromium, driven by Playwright, against the console
served on loopback over an installation whose partner is ACTIVE/HEALTHY and has had webhook deliveries.

Each page is saved as a screenshot under test-artifacts/screenshots/. Playwright waits on its own (``expect``
retries until its default timeout); nothing here measures time.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from reconciler.console.app import CSP
from tests.conftest import Onboarded, People
from tests.support import apps
from tests.support.browser import Pages, in_a_thread, screenshot
from tests.support.processes import PARTNERCTL, eventually
from tests.support.repo import TENANT, policy_text
from tests.support.servers import UvicornThread, free_port
from tests.webhooks.test_dispatcher import dispatch, publish

ACME = f"{TENANT}/acme-bank"
BROKEN = f"{TENANT}/broken-bank"
ALICE, BOB = "alice@msa.example", "bob@other.example"  # the approvers of ministry-social-affairs and of other
# The deliveries made before the console opens, per day: (delivered, failed).
DAYS = {"2026-11-26": (2, 0), "2026-11-27": (0, 1), "2026-11-28": (1, 0)}


@dataclass
class Installed:
    onboarded: Onboarded
    delivered: int


def prepare(onboarded: Onboarded, people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handshake (ACTIVE/HEALTHY), a second tenant approved by Bob, a partner manifest that cannot be applied
    (pending), and deliveries on three days: two delivered, then one failed, then its retry delivered."""
    installation = onboarded.installation
    token = apps.token_for(onboarded.gateway.url, onboarded.credentials).json()["access_token"]
    ping = httpx.get(f"{onboarded.gateway.url}/v1/ping", headers={"Authorization": f"Bearer {token}"})
    assert ping.status_code == 200, ping.text
    installation.repo.write("policies/other.yaml", policy_text("other", people.bob.approver_yaml("bob-other")))
    installation.repo.write_partner("apiVersion: partners.scp.dev/v1\nkind: IntegrationPartner\n", name="broken-bank")
    installation.repo.commit("Tenant other; a partner manifest still being written")
    installation.apply()
    receiver = onboarded.receiver
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-26T09:00:00Z")
    assert publish(onboarded) + publish(onboarded) == 2
    assert dispatch(onboarded) == 2
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-27T09:00:00Z")
    receiver.status = 500
    assert publish(onboarded) == 1
    assert dispatch(onboarded) == 1
    receiver.status = 200
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:00:00Z")
    assert dispatch(onboarded) == 1  # the retry, due long since


@pytest.fixture
def installed(pages: Pages, onboarded: Onboarded, people: People, monkeypatch: pytest.MonkeyPatch) -> Installed:
    # ``pages`` first: the browser runs from here on, and asyncio.run (the dispatcher) only in another thread.
    in_a_thread(prepare, onboarded, people, monkeypatch)
    status = onboarded.installation.status()[ACME]
    assert (status["phase"], status["health"]) == ("ACTIVE", "HEALTHY"), status
    return Installed(onboarded, sum(delivered for delivered, _ in DAYS.values()))


@contextmanager
def console(installed: Installed, *, trusted_proxies: tuple[str, ...] = ()) -> Iterator[str]:
    """The console over the installation's --home on a real uvicorn server on loopback: its base URL."""
    app = apps.console(installed.onboarded.installation.home, trusted_proxies=trusted_proxies)
    server = UvicornThread(app)
    try:
        yield server.url
    finally:
        server.stop()
        app.close()


@pytest.fixture
def local(installed: Installed) -> Iterator[str]:
    """The console without a trusted proxy: no sign-in, the local operator sees every tenant."""
    with console(installed) as url:
        yield url


def errors_of(page: Page) -> list[str]:
    """The page's errors as they come: console errors (a resource the Content-Security-Policy blocked would be
    one), script errors, and answers of 400 and above, except the browser's own favicon.ico request."""
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and "status of 404" not in message.text:
            seen.append(message.text)

    def answered(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            seen.append(f"{response.status} {response.url}")

    page.on("console", note)
    page.on("pageerror", lambda error: seen.append(str(error)))
    page.on("response", answered)
    return seen


def test_partners_page_lists_the_partner_and_its_link_opens_its_page_with_the_chart(pages: Pages, local: str) -> None:
    page = pages.page()
    errors = errors_of(page)
    response = page.goto(local)
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP and "script-src" not in CSP  # no script may run on any page
    row = page.locator(f"tr[data-partner='{ACME}']")
    expect(row.locator(".badge").first).to_have_text("ACTIVE/HEALTHY")
    # a manifest never applied is a partner waiting for its approval, first in the list: it needs attention
    expect(page.locator(f"tr[data-partner='{BROKEN}'] .badge").first).to_have_text("PENDING_APPROVAL/UNKNOWN")
    expect(page.locator("table.partners tbody tr")).to_have_count(2)
    assert page.locator("table.partners tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.partner)") == [BROKEN, ACME]  # fmt: skip
    expect(page.locator("header .who")).to_have_text("local operator")
    # the stylesheet loaded under the CSP: the header is painted, not the browser's default transparent
    expect(page.locator("header")).to_have_css("background-color", "rgb(31, 58, 95)")
    screenshot(page, "console-partners")

    row.get_by_role("link", name=ACME).click()
    expect(page).to_have_url(f"{local}/partners/{ACME}")
    expect(page.locator("h1 .badge")).to_have_text("ACTIVE/HEALTHY")
    chart = page.locator("svg.chart")
    expect(chart).to_have_count(1)
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 50
    expect(chart.locator("rect.bar.delivered")).to_have_count(14)
    expect(chart.locator("rect.bar.failed")).to_have_count(14)
    # each bar is titled with its day and count; the days without deliveries have bars of height 0
    titles = chart.locator("rect.bar > title").all_text_contents()
    expected = [f"{day}: {count} {kind}" for day, counts in DAYS.items()
                for kind, count in zip(("delivered", "failed"), counts, strict=True) if count]  # fmt: skip
    assert [title for title in titles if not title.split(": ")[1].startswith("0 ")] == expected
    delivered, failed = chart.locator("rect.bar.delivered"), chart.locator("rect.bar.failed")
    heights = {name: bars.nth(index).bounding_box() for name, bars, index in (
        ("2 on 11-26", delivered, 11), ("1 on 11-28", delivered, 13), ("1 failed on 11-27", failed, 12))}  # fmt: skip
    assert all(b is not None and b["width"] > 0 and b["height"] > 0 for b in heights.values()), heights
    assert heights["2 on 11-26"]["height"] > heights["1 on 11-28"]["height"]  # type: ignore[index]
    expect(chart.locator("rect.bar.failed").nth(11)).to_have_attribute("height", "0.0")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("scp_cs_")  # no client secret on any page
    screenshot(page, "console-partner")
    assert errors == []


def test_the_filters_keep_and_drop_the_partner(pages: Pages, local: str) -> None:
    page = pages.page()
    page.goto(local)
    row = page.locator(f"tr[data-partner='{ACME}']")
    expect(row).to_have_count(1)
    for name, excluding in (("phase", "SUSPENDED"), ("health", "DEGRADED"), ("phase", "AWAITING_HANDSHAKE")):
        page.goto(local)
        page.locator(f"select[name={name}]").select_option(excluding)
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(f"{local}/?tenant=&phase={excluding if name == 'phase' else ''}"
                                 f"&health={excluding if name == 'health' else ''}")  # fmt: skip
        expect(row).to_have_count(0)
        expect(page.locator("p.empty")).to_contain_text("No partner to show for these filters")
        expect(page.locator(f"select[name={name}] option:checked")).to_have_text(excluding)
    page.goto(local)
    expect(page.locator("select[name=tenant] option")).to_have_text(["all", TENANT])
    page.locator("select[name=tenant]").select_option(TENANT)
    page.locator("select[name=phase]").select_option("ACTIVE")
    page.locator("select[name=health]").select_option("HEALTHY")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_have_count(1)
    screenshot(page, "console-partners-filtered")
    page.goto(f"{local}/?tenant=other")
    expect(row).to_have_count(0)
    expect(page.locator("p.empty")).to_be_visible()


def test_pending_and_report_pages_and_the_downloads(pages: Pages, local: str) -> None:
    page = pages.page()
    page.goto(local)
    page.get_by_role("link", name="Pending").click()
    expect(page).to_have_url(f"{local}/pending")
    blocked = page.locator("table tbody tr")
    expect(blocked).to_have_count(1)
    expect(blocked).to_contain_text(BROKEN)
    expect(blocked).to_contain_text(f"Alice Admin <{ALICE}>")  # who may approve it
    screenshot(page, "console-pending")

    page.get_by_role("link", name="Report").click()
    expect(page).to_have_url(f"{local}/report")
    links = page.locator("main ul a")
    expect(links).to_have_count(4)
    assert [links.nth(index).get_attribute("href") for index in range(4)] == [
        "/report.md", "/report.csv", "/report.json", "/report.html"]  # fmt: skip
    screenshot(page, "console-report")
    for index in range(4):
        with page.expect_download() as started:
            links.nth(index).click()
        download = started.value
        assert download.suggested_filename == f"partnerctl-report.{links.nth(index).get_attribute('href')[8:]}"
        text = Path(download.path()).read_text()
        assert ACME in text, download.suggested_filename
        assert "scp_cs_" not in text


def test_refresh_adds_a_meta_refresh(pages: Pages, local: str) -> None:
    page = pages.page()
    page.goto(local)
    expect(page.locator("meta[http-equiv=refresh]")).to_have_count(0)
    page.get_by_role("link", name="Refresh every 10 s").click()
    expect(page).to_have_url(f"{local}/?refresh=10")
    expect(page.locator("meta[http-equiv=refresh]")).to_have_attribute("content", "10")
    page.get_by_role("link", name="stop").click()
    expect(page.locator("meta[http-equiv=refresh]")).to_have_count(0)


def test_every_page_works_without_javascript(pages: Pages, local: str) -> None:
    page = pages.page(javascript=False)
    response = page.goto(local)
    assert response is not None and response.headers["content-security-policy"] == CSP
    row = page.locator(f"tr[data-partner='{ACME}']")
    expect(row.locator(".badge").first).to_have_text("ACTIVE/HEALTHY")
    page.locator("select[name=phase]").select_option("SUSPENDED")
    page.get_by_role("button", name="Filter").click()  # a plain form submission
    expect(page).to_have_url(f"{local}/?tenant=&phase=SUSPENDED&health=")
    expect(row).to_have_count(0)
    page.locator("select[name=phase]").select_option("")
    page.get_by_role("button", name="Filter").click()
    row.get_by_role("link", name=ACME).click()
    expect(page).to_have_url(f"{local}/partners/{ACME}")
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    screenshot(page, "console-partner-no-javascript")
    page.get_by_role("link", name="Pending").click()
    expect(page.locator("table tbody tr")).to_contain_text(BROKEN)
    page.get_by_role("link", name="Report").click()
    expect(page.locator("main ul a")).to_have_count(4)


def test_a_viewer_sees_only_the_tenants_they_approve(pages: Pages, installed: Installed) -> None:
    with console(installed, trusted_proxies=("127.0.0.1/32",)) as url:
        alice = pages.page(headers={"X-Forwarded-Email": ALICE})
        alice.goto(url)
        expect(alice.locator("header .who")).to_have_text(f"signed in as {ALICE}")
        expect(alice.locator(f"tr[data-partner='{ACME}'] .badge").first).to_have_text("ACTIVE/HEALTHY")

        bob = pages.page(headers={"X-Forwarded-Email": BOB})
        response = bob.goto(url)
        assert response is not None and response.status == 200
        expect(bob.locator("header .who")).to_have_text(f"signed in as {BOB}")
        expect(bob.locator("p.empty")).to_have_text("No partner to show.")
        expect(bob.locator("select[name=tenant] option")).to_have_text(["all"])
        screenshot(bob, "console-partners-other-tenant")
        response = bob.goto(f"{url}/partners/{ACME}")
        assert response is not None and response.status == 403
        expect(bob.locator("h1")).to_have_text("403 · Not yours")
        expect(bob.locator("main")).not_to_contain_text("acme")
        screenshot(bob, "console-partner-other-tenant-403")
        bob.goto(f"{url}/pending")
        expect(bob.locator("p.empty")).to_be_visible()  # Alice's tenant's blocked partner is not Bob's
        report = bob.context.request.get(f"{url}/report.json")
        assert report.status == 200, report.text()
        assert "acme" not in report.text()

        mallory = pages.page(headers={"X-Forwarded-Email": "mallory@evil.example"})
        response = mallory.goto(url)
        assert response is not None and response.status == 403
        expect(mallory.locator("h1")).to_have_text("403 · No tenant")

        nobody = pages.page()  # through the proxy's address, but no sign-in header
        response = nobody.goto(url)
        assert response is not None and response.status == 403
        expect(nobody.locator("h1")).to_have_text("403 · Sign in")


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def served_by_partnerctl(installed: Installed, *options: str) -> Iterator[str]:
    """``partnerctl console serve`` as a real process, wired as deployed (uvicorn without proxy headers): its URL."""
    installation = installed.onboarded.installation
    port = free_port()
    command = [PARTNERCTL, "--repo", str(installation.repo.root), "--home", str(installation.home),
               "--approval", "none", "console", "serve", "--port", str(port), *options]  # fmt: skip
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: process.poll() is not None or answers(url), "partnerctl console serve to start")
        assert process.poll() is None, f"partnerctl console serve exited with {process.returncode}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_header_spoofed_from_outside_the_trusted_proxy_is_ignored(pages: Pages, installed: Installed) -> None:
    # The proxy is at 10.0.0.0/8. The browser connects from 127.0.0.1 claiming to be Alice, and to come from
    # 10.0.0.7 (X-Forwarded-For): neither counts, so there is no viewer and every page asks for the sign-in.
    spoofed = {"X-Forwarded-Email": ALICE, "X-Forwarded-For": "10.0.0.7"}
    with served_by_partnerctl(installed, "--trusted-proxy", "10.0.0.0/8") as url:
        spoofer = pages.page(headers=spoofed)
        for path in ("/", f"/partners/{ACME}", "/pending", "/report", "/report.json"):
            response = spoofer.goto(url + path)
            assert response is not None and response.status == 403, path
            assert response.headers["content-security-policy"] == CSP
            expect(spoofer.locator("h1")).to_have_text("403 · Sign in")
            expect(spoofer.locator("body")).not_to_contain_text("acme")
            expect(spoofer.locator("body")).not_to_contain_text(ALICE)
        screenshot(spoofer, "console-spoofed-header-403")
        # the same console believes the header from its proxy's address only: a control that it is read at all
        assert httpx.get(f"{url}/healthz", headers=spoofed).status_code == 200
