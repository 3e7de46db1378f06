"""Access reviews (DESIGN §12): an approved change of a partner's manifest reviews its access; after the
tenant's reviewDays without one the review is overdue (AccessReviewed False, DEGRADED, audited once), and
with onOverdue: suspend the partner is suspended until an approved review, in both approval modes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import httpx
import pytest

from tests.conftest import Onboarded, People, merge_pull_request
from tests.support import apps
from tests.support.engine import Installation
from tests.support.github import FakeGitHub
from tests.support.repo import PARTNER, TENANT, edit, policy_text
from tests.support.servers import UvicornThread
from tests.support.signing import trailers

ACME = f"{TENANT}/acme-bank"
SUSPEND = "  accessReview: {reviewDays: 90, onOverdue: suspend}\n"


def at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Move partnerctl's clock, and git's, so that commits made now are dated then."""
    monkeypatch.setenv("PARTNERCTL_NOW", moment.isoformat())
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(name, f"{int(moment.timestamp())} +0000")


def approved_at(installation: Installation) -> datetime:
    return datetime.fromisoformat(installation.status()[ACME]["approval"]["approvedAt"])


def condition(installation: Installation, kind: str) -> dict[str, str]:
    return next(c for c in installation.status()[ACME]["conditions"] if c["type"] == kind)


def reviewed(text: str, day: datetime) -> str:
    """The partner file with ``spec.accessReview.reviewedOn`` bumped: a review without other changes."""
    return edit(text, "  suspended: false\n", f"  accessReview: {{reviewedOn: {day.date().isoformat()}}}\n"
                                              "  suspended: false\n")  # fmt: skip


def merge_signed(installation: Installation, people: People, text: str, branch: str) -> str:
    installation.repo.branch(branch)
    installation.repo.write_partner(text)
    installation.repo.commit(f"{branch}")
    installation.repo.checkout("main")
    return installation.repo.merge(branch, "Merge" + trailers(people.alice.email, "DPA-2026-031"), signer=people.alice)


@contextmanager
def gateway(installation: Installation) -> Iterator[str]:
    app = apps.gateway(installation.home)
    server = UvicornThread(app)
    try:
        yield server.url
    finally:
        server.stop()
        app.close()
        app.stores.close()


def test_an_unreviewed_partner_turns_degraded_is_audited_once_and_a_review_clears_it(
    approved: Installation, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge_signed(approved, people, PARTNER, "onboard-acme")
    approved.apply()
    start = approved_at(approved)
    assert condition(approved, "AccessReviewed")["status"] == "True"
    [recorded] = [e for e in approved.audit() if e["event"] == "review.recorded"]
    assert recorded["details"]["approver"] == people.alice.email
    assert recorded["details"]["dueAt"] == (start + timedelta(days=90)).isoformat()

    at(monkeypatch, start + timedelta(days=89))
    approved.apply()
    assert condition(approved, "AccessReviewed")["status"] == "True"
    assert "review.overdue" not in approved.events(ACME)

    at(monkeypatch, start + timedelta(days=91))
    approved.apply()
    approved.apply()  # once, however many applies see it overdue
    overdue = condition(approved, "AccessReviewed")
    assert (overdue["status"], overdue["reason"]) == ("False", "ReviewOverdue")
    assert approved.events(ACME).count("review.overdue") == 1
    [event] = [e for e in approved.audit() if e["event"] == "review.overdue"]
    assert event["details"]["onOverdue"] == "flag" and event["details"]["reviewDays"] == 90
    assert approved.status()[ACME]["phase"] != "SUSPENDED", "onOverdue: flag only flags"

    merge_signed(approved, people, reviewed(PARTNER, start + timedelta(days=91)), "review-acme")
    approved.apply()
    assert condition(approved, "AccessReviewed")["status"] == "True"
    assert approved.events(ACME).count("review.recorded") == 2


def test_an_overdue_active_partner_is_degraded(onboarded_active: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    status = onboarded_active.status()[ACME]
    assert (status["phase"], status["health"]) == ("ACTIVE", "HEALTHY")
    at(monkeypatch, approved_at(onboarded_active) + timedelta(days=91))
    onboarded_active.apply()
    status = onboarded_active.status()[ACME]
    assert (status["phase"], status["health"]) == ("ACTIVE", "DEGRADED")


@pytest.fixture
def onboarded_active(onboarded: Onboarded) -> Installation:
    """The ``onboarded`` partner after its handshake: ACTIVE/HEALTHY."""
    token = apps.token_for(onboarded.gateway.url, onboarded.credentials).json()["access_token"]
    assert httpx.get(f"{onboarded.gateway.url}/v1/ping", headers={"authorization": f"Bearer {token}"}).is_success
    onboarded.installation.apply()
    return onboarded.installation


def test_with_suspend_an_overdue_partner_is_suspended_until_an_approved_review_git(
    approved: Installation, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = policy_text(TENANT, people.alice.approver_yaml("alice-msa")) + SUSPEND
    approved.repo.write(f"policies/{TENANT}.yaml", policy)
    approved.repo.commit("Reviews suspend" + trailers(people.owner.email, "PLAT-2026-002"), signer=people.owner)
    merge_signed(approved, people, PARTNER, "onboard-acme")
    approved.apply()
    credentials = approved.deliver(ACME)
    start = approved_at(approved)
    with gateway(approved) as url:
        assert apps.token_for(url, credentials).status_code == 200

        at(monkeypatch, start + timedelta(days=91))
        actions = approved.plan()["actions"]
        assert {"partner": ACME, "action": "suspend-partner", "reason": "review-overdue", "details": {}} in actions
        approved.apply()
        assert approved.status()[ACME]["phase"] == "SUSPENDED"
        assert apps.token_for(url, credentials).status_code == 401, "its token refused at the gateway"
        assert approved.events(ACME).count("review.overdue") == 1
        approved.apply()
        assert approved.plan()["actions"] == [], "stays suspended, quietly"

        merge_signed(approved, people, reviewed(PARTNER, start + timedelta(days=91)), "review-acme")
        approved.apply()
        assert approved.status()[ACME]["phase"] != "SUSPENDED"
        assert condition(approved, "AccessReviewed")["status"] == "True"
        again = approved.deliver(ACME)
        assert apps.token_for(url, again).status_code == 200, "back after the review, with a new secret"


def test_with_suspend_an_overdue_partner_is_suspended_until_an_approved_review_github(
    on_github: Installation, github: FakeGitHub, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = policy_text(TENANT, people.alice.approver_yaml("alice-msa")) + SUSPEND
    on_github.repo.write(f"policies/{TENANT}.yaml", policy)
    change = on_github.repo.commit("Reviews suspend")
    github.merged_pull(7, merge_sha=change, head_sha=change, body="Policy-Document: PLAT-2")
    github.review(7, "owner-gh", "APPROVED", change)
    merge_pull_request(on_github, github, 2)
    apply_github(on_github)
    start = approved_at(on_github)

    at(monkeypatch, start + timedelta(days=91))
    apply_github(on_github)
    assert on_github.status()[ACME]["phase"] == "SUSPENDED"

    merge_pull_request(on_github, github, 3, text=reviewed(PARTNER, start + timedelta(days=91)))
    github.reviews[3][-1]["submitted_at"] = (start + timedelta(days=91)).isoformat()  # reviewed on that day
    apply_github(on_github)
    assert on_github.status()[ACME]["phase"] != "SUSPENDED"
    assert condition(on_github, "AccessReviewed")["status"] == "True"


def apply_github(installation: Installation) -> None:
    result = installation.run("apply", approval="github")
    assert result.exit_code == 0, result


def test_a_review_dated_in_the_future_is_a_schema_violation(installation: Installation) -> None:
    installation.repo.write_partner(reviewed(PARTNER, datetime(2027, 1, 1)))
    result = installation.run("--output", "json", "validate")
    assert result.exit_code == 1
    [violation] = result.json()["violations"]
    assert violation["code"] == "SCHEMA" and violation["path"] == "spec.accessReview.reviewedOn"
    assert "future" in violation["message"]
