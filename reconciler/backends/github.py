"""The few GitHub REST calls ``--approval github`` makes, with pagination, rate limits and clear errors.

``GET /repos/{o}/{r}/commits/{sha}/pulls`` tells which pull request was merged as a commit, and
``GET /repos/{o}/{r}/pulls/{n}/reviews`` (paginated) its reviews.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.approval.github import PullRequest, Review
from reconciler.errors import Stalled, StoreUnavailable, UsageError

__all__ = ["GitHubClient", "client_from_environment"]

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
MAX_WAIT_SECONDS = 60


class GitHubClient:
    """The few GitHub REST calls we make, with pagination, rate limits and clear errors."""

    def __init__(self, *, api_url: str, repository: str, token: str | None, timeout: float = 10.0) -> None:
        self.repository = repository
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "partnerctl"}  # fmt: skip
        if token:
            if not (token.isascii() and token.isprintable()) or " " in token:
                raise UsageError("GITHUB_TOKEN is not a GitHub token (tokens are printable ASCII without spaces)")
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
            try:
                page = response.json()
            except ValueError as error:
                raise StoreUnavailable(f"GitHub answered {path} with something that is not JSON") from error
            if not isinstance(page, list):
                raise StoreUnavailable(f"GitHub answered {path} with {type(page).__name__}, expected a list")
            items.extend(page)
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url = match.group(1) if match else None
            if url is not None and urlsplit(url).netloc != urlsplit(self._api).netloc:
                raise Stalled("GitHub's pagination link points at another host; refusing to follow it")
        return items

    def _get(self, url: str) -> httpx.Response:
        for attempt in range(4):
            try:
                response = self._client.get(url)
            except httpx.HTTPError as error:
                raise StoreUnavailable(
                    f"cannot reach GitHub at {self._api} ({type(error).__name__}); nothing is applied until it answers"
                ) from error
            wait = _wait_for(response)
            if wait is None:
                break
            if wait > MAX_WAIT_SECONDS or attempt == 3:
                raise StoreUnavailable(f"GitHub rate limit: retry in {wait:.0f}s; nothing is applied until then")
            time.sleep(wait)
        if response.status_code == 401:
            raise Stalled("GitHub refused the token (401): set GITHUB_TOKEN to a token that can read pull requests")
        if response.status_code == 404:
            raise Stalled(f"GitHub has no {urlsplit(url).path} (404): check --github-repo and the token's access")
        if response.status_code >= 400:
            raise StoreUnavailable(f"GitHub answered {response.status_code} for {urlsplit(url).path}")
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


def client_from_environment(repository: str | None) -> GitHubClient:
    repository = repository or os.environ.get("GITHUB_REPOSITORY")
    if not repository or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise UsageError("--approval github needs --github-repo OWNER/NAME (or GITHUB_REPOSITORY)")
    return GitHubClient(
        api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com"),
        repository=repository,
        token=os.environ.get("GITHUB_TOKEN"),
    )
