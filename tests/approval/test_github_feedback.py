"""--approval github, back on the pull request (DESIGN §12): the commit status ``partnerctl/apply`` and one comment."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from reconciler.backends.github_feedback import CONTEXT, MARKER, SETTING
from tests.conftest import merge_pull_request
from tests.support import apps
from tests.support.cli import Result
from tests.support.engine import Installation
from tests.support.github import LOGIN, FakeGitHub
from tests.support.leaks import assert_nowhere
from tests.support.repo import PARTNER, TENANT, edit
from tests.support.servers import UvicornThread

ACME = f"{TENANT}/acme-bank"
SECOND_HOOK = """    - name: second-hook
      url: "https://hooks.second.example/x"
      events: [payment.status.changed]
  mappings:"""


def apply(installation: Installation) -> Result:
    return installation.run("--output", "json", "apply", approval="github")


def statuses(github: FakeGitHub, sha: str) -> list[tuple[str, str]]:
    return [(status["state"], status["description"]) for status in github.status_of(sha, CONTEXT)]


def ours(github: FakeGitHub, number: int) -> list[str]:
    """The bodies of partnerctl's comments on pull request ``number``."""
    return [comment["body"] for comment in github.comments.get(number, []) if comment["body"].startswith(MARKER)]


def handshake(installation: Installation) -> dict[str, str]:
    """The partner picks up its credentials and calls /v1/ping through the gateway; returns the credentials."""
    credentials = installation.deliver(ACME)
    gateway = apps.gateway(installation.home)
    server = UvicornThread(gateway)
    try:
        token = apps.token_for(server.url, credentials).json()["access_token"]
        assert httpx.get(f"{server.url}/v1/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        server.stop()
        gateway.close()
        gateway.stores.close()
    return credentials


def test_an_applied_pull_request_gets_a_success_status_and_one_comment(
    on_github: Installation, github: FakeGitHub
) -> None:
    _, merge = merge_pull_request(on_github, github, 2)
    assert apply(on_github).exit_code == 0
    assert statuses(github, merge) == [("success", "3 actions applied, 0 failed; 1 AWAITING_HANDSHAKE/UNKNOWN")]
    [comment] = github.comments[2]
    assert comment["user"]["login"] == LOGIN and comment["body"].startswith(MARKER)
    assert f"| `{ACME}` | AWAITING_HANDSHAKE | UNKNOWN | — |" in comment["body"]
    assert 1 not in github.comments  # the pull request merged as an older commit is not the applied one


def test_a_later_apply_edits_the_same_comment_and_an_idle_one_writes_nothing(
    on_github: Installation, github: FakeGitHub
) -> None:
    _, merge = merge_pull_request(on_github, github, 2)
    assert apply(on_github).exit_code == 0
    [first] = github.comments[2]
    handshake(on_github)
    writes = len(github.writes)
    assert apply(on_github).exit_code == 0
    [edited] = github.comments[2]
    assert edited["id"] == first["id"]
    assert f"| `{ACME}` | ACTIVE | DEGRADED | — |" in edited["body"]  # its webhook host does not resolve here
    assert github.writes[writes:] == [("PATCH", f"/repos/{github.repository}/issues/comments/{first['id']}")]
    assert len(github.status_of(merge, CONTEXT)) == 1  # no action: the status keeps the applying run's counts
    writes = len(github.writes)
    assert apply(on_github).exit_code == 0
    assert github.writes[writes:] == []  # nothing changed: no needless PATCH


def test_each_pass_of_the_loop_reports_too(on_github: Installation, github: FakeGitHub) -> None:
    _, merge = merge_pull_request(on_github, github, 2)
    assert on_github.run("run", "--once", approval="github").exit_code == 0
    assert [state for state, _ in statuses(github, merge)] == ["success"] and len(ours(github, 2)) == 1


def test_a_failed_action_is_a_failure_status(on_github: Installation, github: FakeGitHub) -> None:
    merge_pull_request(on_github, github, 2)
    assert apply(on_github).exit_code == 0
    # ACME's sealed pickup is altered by hand: the webhook the next pull request adds cannot be registered.
    with sqlite3.connect(on_github.home / "secrets" / "secrets.db") as db:
        db.execute("UPDATE pickups SET sealed = zeroblob(60) WHERE partner = ?", (ACME,))
    _, merge = merge_pull_request(on_github, github, 3, text=edit(PARTNER, "  mappings:", SECOND_HOOK))
    result = apply(on_github)
    assert result.exit_code == 1
    [(state, description)] = statuses(github, merge)
    assert state == "failure" and description.startswith("0 actions applied, 1 failed;")
    assert "IntegrityError" not in description  # the counts, never an error's text
    assert len(ours(github, 3)) == 1 and len(ours(github, 2)) == 1


@pytest.mark.parametrize("outage", [503, 502])
def test_github_down_never_fails_the_apply_and_the_feedback_follows_later(
    on_github: Installation, github: FakeGitHub, outage: int
) -> None:
    _, merge = merge_pull_request(on_github, github, 2)
    github.go_down(outage, methods=("POST", "PATCH"))  # after the approvals were read: GitHub fails the writes
    result = apply(on_github)
    assert result.exit_code == 0, result
    assert f"GitHub answered {outage}" in result.stderr and "next apply" in result.stderr
    assert "Traceback" not in result.stderr
    assert statuses(github, merge) == [] and ours(github, 2) == []
    assert apply(on_github).exit_code == 0  # still down: still pending, still exit 0
    github.come_back()
    result = apply(on_github)
    assert result.exit_code == 0 and result.stderr == ""
    assert statuses(github, merge) == [("success", "3 actions applied, 0 failed; 1 AWAITING_HANDSHAKE/UNKNOWN")]
    assert len(ours(github, 2)) == 1


def test_a_status_github_refuses_as_invalid_is_dropped_not_retried(on_github: Installation, github: FakeGitHub) -> None:
    _, merge = merge_pull_request(on_github, github, 2)
    github.unknown_commits.add(merge)  # e.g. the reconciled repository is not the one on GitHub
    result = apply(on_github)
    assert result.exit_code == 0 and "dropped" in result.stderr and "422" in result.stderr
    assert len(ours(github, 2)) == 1  # the comment still arrives
    writes = len(github.writes)
    assert apply(on_github).stderr == "" and github.writes[writes:] == []


def test_someone_elses_comment_quoting_the_marker_is_left_alone(on_github: Installation, github: FakeGitHub) -> None:
    merge_pull_request(on_github, github, 2)
    quoted = github.comment(2, "ivy-integration", f"> {MARKER}\n> quoted from partnerctl\n\nThanks!")
    assert apply(on_github).exit_code == 0
    assert github.comments[2][0] == quoted and len(ours(github, 2)) == 1


def test_a_direct_push_gets_a_status_and_no_comment(on_github: Installation, github: FakeGitHub) -> None:
    on_github.repo.write_partner()
    pushed = on_github.repo.commit("Straight to main")
    assert apply(on_github).exit_code == 0
    blocked = "0 actions applied, 0 failed, 1 blocked; 1 PENDING_APPROVAL/UNKNOWN"  # no review: nothing applied
    assert statuses(github, pushed) == [("success", blocked)]
    assert github.comments == {}


def test_no_secret_reaches_the_status_or_the_comment(on_github: Installation, github: FakeGitHub) -> None:
    merge_pull_request(on_github, github, 2)
    assert apply(on_github).exit_code == 0
    credentials = handshake(on_github)
    assert apply(on_github).exit_code == 0
    with apps.stores(on_github.home) as stores:
        kept = stores.journal.setting(SETTING)
    assert kept["pendingStatuses"] == {} and kept["pendingComments"] == {}
    issued = [credentials["client_secret"], *credentials["webhook_secrets"].values()]
    assert_nowhere(issued, {
        "the commit statuses": json.dumps(github.statuses).encode(),
        "the pull-request comments": json.dumps(github.comments).encode(),
        "the journal's github-feedback": json.dumps(kept).encode(),
    })  # fmt: skip
