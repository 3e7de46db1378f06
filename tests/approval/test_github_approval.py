"""--approval github: the merged pull request's reviews are the approval, read from the GitHub REST API."""

from __future__ import annotations

import pytest

from tests.conftest import People
from tests.support.engine import Installation
from tests.support.github import FakeGitHub
from tests.support.repo import PARTNER, TENANT

ACME = f"{TENANT}/acme-bank"
OWNER, ALICE, BOB = "owner-gh", "alice-msa", "bob-other"


def pull_request(installation: Installation, github: FakeGitHub, *, body: str = "Policy-Document: DPA-2026-031",
                 number: int = 2) -> tuple[str, str, str]:  # fmt: skip
    """Branch, two commits, and a merge on main registered as pull request ``number``: (first head, head, merge)."""
    repo = installation.repo
    repo.branch("onboard-acme")
    repo.write_partner(PARTNER.replace("eu-west", "eu-central"))
    older = repo.commit("First draft")
    repo.write_partner()
    head = repo.commit("Onboard ACME Bank")
    repo.checkout("main")
    merge = repo.merge("onboard-acme", f"Merge pull request #{number}")
    github.merged_pull(number, merge_sha=merge, head_sha=head, body=body)
    return older, head, merge


def run_github(installation: Installation, *args: str) -> dict[str, object]:
    result = installation.run("--output", "json", *args, approval="github")
    assert result.exit_code == 0, result
    return dict(result.json())


def test_an_approved_pull_request_applies(on_github: Installation, github: FakeGitHub, people: People) -> None:
    _, head, merge = pull_request(on_github, github)
    github.review(2, ALICE, "APPROVED", head)
    plan = run_github(on_github, "plan")
    assert next(a["action"] for a in plan["actions"]) == "register-partner"
    run_github(on_github, "apply")
    record = on_github.status()[ACME]["approval"]
    assert record["commit"] == merge
    assert record["approver"] == people.alice.email
    assert record["policyDocument"] == "DPA-2026-031"
    assert record["approvedAt"].startswith("2026-11-28T08:")


@pytest.mark.parametrize(
    ("reviews", "body", "reason", "words"),
    [
        ([(ALICE, "APPROVED", "older")], "Policy-Document: DPA-1", "awaiting-approval", "stale"),
        ([(ALICE, "APPROVED", "head"), (ALICE, "DISMISSED", "head")], "Policy-Document: DPA-1", "awaiting-approval",
         "no valid approval"),
        ([(ALICE, "APPROVED", "head"), (ALICE, "CHANGES_REQUESTED", "head")], "Policy-Document: DPA-1",
         "awaiting-approval", "no valid approval"),
        ([(BOB, "APPROVED", "head")], "Policy-Document: DPA-1", "approver-not-authorised", "approved by others"),
        ([(ALICE, "APPROVED", "head")], "Please merge", "missing-policy-document", "Policy-Document"),
        ([], "Policy-Document: DPA-1", "awaiting-approval", "@alice-msa"),
    ],
    ids=["stale", "dismissed", "changes-requested", "foreign-approver", "no-policy-document", "no-review"],
)  # fmt: skip
def test_reviews_that_do_not_approve(
    on_github: Installation, github: FakeGitHub, reviews: list[tuple[str, str, str]], body: str, reason: str,
    words: str,
) -> None:  # fmt: skip
    older, head, _ = pull_request(on_github, github, body=body)
    for login, state, which in reviews:
        github.review(2, login, state, head if which == "head" else older)
    plan = run_github(on_github, "plan")
    assert plan["actions"] == []
    [item] = plan["blocked"]
    assert (item["partner"], item["reason"]) == (ACME, reason)
    assert words in item["message"]


def test_a_direct_push_has_no_pull_request(on_github: Installation) -> None:
    on_github.repo.write_partner()
    on_github.repo.commit("Straight to main")
    plan = run_github(on_github, "plan")
    assert plan["blocked"][0]["reason"] == "awaiting-approval"
    assert "no pull request" in plan["blocked"][0]["message"]


def test_reviews_are_read_across_pages(on_github: Installation, github: FakeGitHub) -> None:
    _, head, _ = pull_request(on_github, github)
    for index in range(130):
        github.review(2, f"reader-{index}", "COMMENTED", head)
    github.review(2, ALICE, "APPROVED", head)
    plan = run_github(on_github, "plan")
    assert plan["blocked"] == []
    assert any("page=2" in request for request in github.requests)


def test_the_rate_limit_is_waited_for(on_github: Installation, github: FakeGitHub) -> None:
    _, head, _ = pull_request(on_github, github)
    github.review(2, ALICE, "APPROVED", head)
    github.rate_limited_requests = 1
    assert run_github(on_github, "plan")["blocked"] == []


def test_unreachable_github_applies_nothing(on_github: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    on_github.repo.write_partner()
    on_github.repo.commit("Onboard")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    result = on_github.run("apply", approval="github")
    assert result.exit_code == 1
    assert "cannot reach GitHub" in result.stderr and "Traceback" not in result.stderr
    assert on_github.run("--output", "json", "status").json()["partners"] == []


def test_a_bad_token_is_a_clear_error(on_github: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    result = on_github.run("plan", approval="github")
    assert result.exit_code == 1
    assert "GITHUB_TOKEN" in result.stderr
    assert "wrong" not in result.stderr
