"""``--approval github``: the pull request merged as a commit carries the approval (DESIGN §4).

A change is approved when the latest review of an allowed approver's GitHub login is ``APPROVED`` on
the pull request's final head commit (a review of an older head is stale; a dismissed one does not
count) and its body has a line ``Policy-Document: <ID>``. The pull requests come from a
:class:`PullRequests` source (the REST client in :mod:`reconciler.backends.github`); when GitHub
cannot be asked, nothing is applied: doubt is not approval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from reconciler.approval.gate import ApprovalRecord
from reconciler.approval.history import HistoryGate, names_of
from reconciler.manifests.models import Approver, TrustRoot
from reconciler.stores.source import Commit, Revision
from reconciler.vocabulary import BlockedReason

__all__ = ["GitHubApproval", "PullRequest", "PullRequests", "Review"]

_POLICY_DOCUMENT = re.compile(r"^[ \t]*Policy-Document:[ \t]*(\S.*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Review:
    login: str
    state: str
    commit_id: str
    submitted_at: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str
    body: str
    reviews: list[Review]


class PullRequests(Protocol):
    """Where pull requests and their reviews are read (GitHub's REST API)."""

    def merged_pull_request(self, sha: str) -> PullRequest | None:
        """The pull request that was merged as commit ``sha``, with its reviews."""


class GitHubApproval(HistoryGate):
    """Approvals are APPROVED reviews on the final head of the merged pull request."""

    mode = "github"

    def __init__(self, trust_root: TrustRoot, *, digest: str, client: PullRequests) -> None:
        super().__init__(trust_root, digest=digest)
        self.client = client
        self._pulls: dict[str, PullRequest | None] = {}

    def fingerprint(self) -> str | None:
        return None  # reviews can change without a commit: never answer a plan from the memo

    def prepare(self, revision: Revision, commits: list[Commit]) -> None:
        for commit in commits:
            if commit.sha not in self._pulls:
                self._pulls[commit.sha] = self.client.merged_pull_request(commit.sha)

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[BlockedReason, str] | ApprovalRecord:
        needs = f"it needs an APPROVED review on the final head by {who}: {_logins(allowed)}"
        pull = self._pulls.get(commit.sha)
        if pull is None:
            return BlockedReason.AWAITING_APPROVAL, f"no pull request was merged as this commit; {needs}"
        latest: dict[str, Review] = {}
        for review in pull.reviews:  # GitHub lists reviews oldest first; COMMENTED does not change a verdict
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.login.lower()] = review
        by_login = {approver.github.lower(): approver for approver in allowed if approver.github}
        approvals = [review for review in latest.values() if review.state == "APPROVED"]
        valid = [r for r in approvals if r.commit_id == pull.head_sha and r.login.lower() in by_login]
        number = f"pull request #{pull.number}"
        if not valid:
            if any(r.login.lower() in by_login for r in approvals):
                return BlockedReason.AWAITING_APPROVAL, f"{number}'s approval is stale (an older head); {needs}"
            if approvals:
                return BlockedReason.APPROVER_NOT_AUTHORISED, f"{number} was approved by others; {needs}"
            return BlockedReason.AWAITING_APPROVAL, f"{number} has no valid approval; {needs}"
        document = _POLICY_DOCUMENT.search(pull.body)
        if document is None:
            return BlockedReason.MISSING_POLICY_DOCUMENT, f"{number}'s body has no line Policy-Document: <ID>"
        review = valid[-1]
        return ApprovalRecord(
            commit=commit.sha,
            approver=by_login[review.login.lower()].email,
            policy_document=document.group(1),
            approved_at=review.submitted_at or commit.date,
        )


def _logins(approvers: list[Approver]) -> str:
    logins = [f"@{approver.github}" for approver in approvers if approver.github]
    return ", ".join(logins) or f"nobody with a GitHub login ({names_of(approvers)})"
