"""``--approval github``: the pull request merged as a commit carries the approval (DESIGN §4).

For each first-parent commit that changes manifests, the GitHub REST API tells which pull request
was merged as that commit (``GET /repos/{o}/{r}/commits/{sha}/pulls``) and its reviews
(``GET /repos/{o}/{r}/pulls/{n}/reviews``, paginated). The change is approved when the latest review
of an allowed approver's GitHub login is ``APPROVED`` on the pull request's final head commit (a
review of an older head is stale; a dismissed one does not count) and the body has a line
``Policy-Document: <ID>``. When GitHub cannot be asked, nothing is applied: doubt is not approval.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.approval.gate import ApprovalRecord
from reconciler.approval.git import Commit, HistoryGate, names_of
from reconciler.backends.git import Revision
from reconciler.errors import RepositoryError, UsageError
from reconciler.manifests.models import Approver, TrustRoot

_POLICY_DOCUMENT = re.compile(r"^[ \t]*Policy-Document:[ \t]*(\S.*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
MAX_WAIT_SECONDS = 60


class GitHubError(RepositoryError):
    """GitHub could not be asked; nothing is applied on doubt."""


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


class GitHubClient:
    """The few GitHub REST calls we make, with pagination, rate limits and clear errors."""

    def __init__(self, *, api_url: str, repository: str, token: str | None, timeout: float = 10.0) -> None:
        self.repository = repository
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "partnerctl"}  # fmt: skip
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._api = api_url.rstrip("/")
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def merged_pull_request(self, sha: str) -> PullRequest | None:
        """The pull request that was merged as commit ``sha``, with its reviews."""
        for pull in self._get_all(f"/repos/{self.repository}/commits/{sha}/pulls"):
            if pull.get("merge_commit_sha") == sha and pull.get("merged_at"):
                number = int(pull["number"])
                reviews = [
                    Review(
                        login=str((review.get("user") or {}).get("login", "")),
                        state=str(review.get("state", "")),
                        commit_id=str(review.get("commit_id", "")),
                        submitted_at=str(review.get("submitted_at") or ""),
                    )
                    for review in self._get_all(f"/repos/{self.repository}/pulls/{number}/reviews")
                ]
                return PullRequest(number, str(pull["head"]["sha"]), str(pull.get("body") or ""), reviews)
        return None

    def _get_all(self, path: str) -> list[dict[str, Any]]:
        url: str | None = f"{self._api}{path}?per_page=100"
        items: list[dict[str, Any]] = []
        while url is not None:
            response = self._get(url)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GitHub answered {path} with {type(page).__name__}, expected a list")
            items.extend(page)
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url = match.group(1) if match else None
            if url is not None and urlsplit(url).netloc != urlsplit(self._api).netloc:
                raise GitHubError("GitHub's pagination link points at another host; refusing to follow it")
        return items

    def _get(self, url: str) -> httpx.Response:
        for attempt in range(4):
            try:
                response = self._client.get(url)
            except httpx.HTTPError as error:
                raise GitHubError(
                    f"cannot reach GitHub at {self._api} ({type(error).__name__}); nothing is applied until it answers"
                ) from None
            wait = _wait_for(response)
            if wait is None:
                break
            if wait > MAX_WAIT_SECONDS or attempt == 3:
                raise GitHubError(f"GitHub rate limit: retry in {wait:.0f}s; nothing is applied until then")
            time.sleep(wait)
        if response.status_code == 401:
            raise GitHubError("GitHub refused the token (401): set GITHUB_TOKEN to a token that can read pull requests")
        if response.status_code == 404:
            raise GitHubError(f"GitHub has no {urlsplit(url).path} (404): check --github-repo and the token's access")
        if response.status_code >= 400:
            raise GitHubError(f"GitHub answered {response.status_code} for {urlsplit(url).path}")
        return response


def _wait_for(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying, per GitHub's rate-limit headers; None when there is no limit hit."""
    if response.status_code not in (403, 429) and response.status_code < 500:
        return None
    if response.status_code >= 500:
        return 1.0
    retry_after = response.headers.get("retry-after")
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        return max(0.0, float(reset) - time.time()) + 0.5 if reset.isdigit() else 60.0
    return None


class GitHubApproval(HistoryGate):
    """Approvals are APPROVED reviews on the final head of the merged pull request."""

    mode = "github"

    def __init__(self, trust_root: TrustRoot, *, digest: str, client: GitHubClient) -> None:
        super().__init__(trust_root, digest=digest)
        self.client = client
        self._pulls: dict[str, PullRequest | None] = {}

    def fingerprint(self) -> str | None:
        return None  # reviews can change without a commit: never answer a plan from the memo

    def prepare(self, revision: Revision, commits: list[Commit]) -> None:
        for commit in commits:
            if commit.sha not in self._pulls:
                self._pulls[commit.sha] = self.client.merged_pull_request(commit.sha)

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[str, str] | ApprovalRecord:
        needs = f"it needs an APPROVED review on the final head by {who}: {_logins(allowed)}"
        pull = self._pulls.get(commit.sha)
        if pull is None:
            return "awaiting-approval", f"no pull request was merged as this commit; {needs}"
        latest: dict[str, Review] = {}
        for review in pull.reviews:  # GitHub lists reviews oldest first; COMMENTED does not change a verdict
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.login.lower()] = review
        by_login = {approver.github.lower(): approver for approver in allowed if approver.github}
        approvals = [review for review in latest.values() if review.state == "APPROVED"]
        valid = [r for r in approvals if r.commit_id == pull.head_sha and r.login.lower() in by_login]
        if not valid:
            if any(r.login.lower() in by_login for r in approvals):
                return "awaiting-approval", f"pull request #{pull.number}'s approval is stale (an older head); {needs}"
            if approvals:
                return "approver-not-authorised", f"pull request #{pull.number} was approved by others; {needs}"
            return "awaiting-approval", f"pull request #{pull.number} has no valid approval; {needs}"
        document = _POLICY_DOCUMENT.search(pull.body)
        if document is None:
            return "missing-policy-document", f"pull request #{pull.number}'s body has no line Policy-Document: <ID>"
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


def client_from_environment(repository: str | None) -> GitHubClient:
    repository = repository or os.environ.get("GITHUB_REPOSITORY")
    if not repository or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise UsageError("--approval github needs --github-repo OWNER/NAME (or GITHUB_REPOSITORY)")
    return GitHubClient(
        api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com"),
        repository=repository,
        token=os.environ.get("GITHUB_TOKEN"),
    )
