"""The few GitHub REST calls ``--approval github`` makes, with pagination, rate limits and clear errors.

``GET /repos/{o}/{r}/commits/{sha}/pulls`` tells which pull request was merged as a commit, and
``GET /repos/{o}/{r}/pulls/{n}/reviews`` (paginated) its reviews. After an apply (DESIGN §12),
``POST /repos/{o}/{r}/statuses/{sha}`` sets the commit status, and ``GET /repos/{o}/{r}/issues/{n}/comments``
(paginated), ``PATCH /repos/{o}/{r}/issues/comments/{id}`` or ``POST /repos/{o}/{r}/issues/{n}/comments``
keep one marked comment on the pull request.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.approval.github import PullRequest, Review
from reconciler.errors import InvalidState, Stalled, StoreUnavailable, UsageError

__all__ = ["STATUS_STATES", "Comment", "GitHubClient", "client_from_environment"]

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
MAX_WAIT_SECONDS = 60
STATUS_STATES = ("error", "failure", "pending", "success")
MAX_DESCRIPTION = 140  # GitHub refuses a longer commit-status description (422)


@dataclass(frozen=True)
class Comment:
    """An issue comment as GitHub answered it: its id, web address and author's login."""

    id: int
    html_url: str
    author: str


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

    def set_status(self, sha: str, state: str, description: str, context: str = "partnerctl/apply") -> None:
        """``POST /repos/{o}/{r}/statuses/{sha}``: the commit status ``context`` of ``sha``; GitHub keeps the
        newest per context. ``description`` is cut to GitHub's 140 characters."""
        if state not in STATUS_STATES:
            raise UsageError(f"a commit status is one of {', '.join(STATUS_STATES)}, not {state!r}")
        if not re.fullmatch(r"[0-9a-fA-F]{7,64}", sha):
            raise UsageError(f"{sha!r} is not a commit id")
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 1] + "…"
        body = {"state": state, "description": description, "context": context}
        self._write("POST", f"/repos/{self.repository}/statuses/{sha}", body)

    def upsert_comment(self, number: int, marker: str, body: str, *, author: str | None = None) -> Comment:
        """Keep one comment marked with ``marker`` (a hidden ``<!-- … -->``) on issue or pull request ``number``:
        edit the first comment that starts with it (a quote of it in a reply does not), written by ``author``
        when given (our login as GitHub answered before), or post one when there is none. A comment that
        already reads ``body`` is left alone."""
        if not body.startswith(marker):
            body = f"{marker}\n{body}"
        path = f"/repos/{self.repository}/issues/{number}/comments"
        for found in self._get_all(path):
            if not isinstance(found, dict) or not str(found.get("body") or "").startswith(marker):
                continue
            ours = _comment(found, path)
            if author is not None and ours.author.lower() != author.lower():
                continue
            if found.get("body") == body:
                return ours
            return _comment(self._write("PATCH", f"/repos/{self.repository}/issues/comments/{ours.id}", {"body": body}),
                            path)  # fmt: skip
        return _comment(self._write("POST", path, {"body": body}), path)

    def _write(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send(method, f"{self._api}{path}", body)
        try:
            answer = response.json()
        except ValueError as error:
            raise StoreUnavailable(f"GitHub answered {method} {path} with something that is not JSON") from error
        if not isinstance(answer, dict):
            raise StoreUnavailable(f"GitHub answered {method} {path} with {type(answer).__name__}, expected an object")
        return answer

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
        return self._send("GET", url)

    def _send(self, method: str, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One request, waiting out rate limits; a read is tried again on a server error, a write is not
        (it may have landed: the caller finds it on its next try instead of writing it twice)."""
        reading = method == "GET"
        consequence = "nothing is applied until it answers" if reading else "it is tried again on the next apply"
        for attempt in range(4):
            try:
                response = self._client.request(method, url, json=body)
            except httpx.HTTPError as error:
                raise StoreUnavailable(
                    f"cannot reach GitHub at {self._api} ({type(error).__name__}); {consequence}"
                ) from error
            wait = _wait_for(response)
            if wait is None or (not reading and response.status_code >= 500):
                break
            if (wait > MAX_WAIT_SECONDS or attempt == 3) and response.status_code >= 500:
                break
            if wait > MAX_WAIT_SECONDS or attempt == 3:
                raise StoreUnavailable(f"GitHub rate limit: retry in {wait:.0f}s; {consequence}")
            time.sleep(wait)
        where = urlsplit(url).path if reading else f"{method} {urlsplit(url).path}"
        if response.status_code == 401:
            needs = "read pull requests" if reading else "write commit statuses and pull-request comments"
            raise Stalled(f"GitHub refused the token (401): set GITHUB_TOKEN to a token that can {needs}")
        if response.status_code == 403 and not reading:
            raise Stalled(
                f"GitHub refused {where} (403): the token needs the permissions statuses: write and "
                "pull requests: write (issues: write)"
            )
        if response.status_code == 404:
            raise Stalled(f"GitHub has no {urlsplit(url).path} (404): check --github-repo and the token's access")
        if response.status_code == 422:  # this request can never succeed (an unknown commit, a bad field)
            raise InvalidState(f"GitHub refused {where} as invalid (422): {_message(response)}")
        if response.status_code >= 400:
            raise StoreUnavailable(f"GitHub answered {response.status_code} for {where}; {consequence}")
        return response


def _comment(found: dict[str, Any], path: str) -> Comment:
    try:
        return Comment(int(found["id"]), str(found.get("html_url") or ""),
                       str((found.get("user") or {}).get("login", "")))  # fmt: skip
    except (KeyError, TypeError, ValueError) as error:
        raise StoreUnavailable(f"GitHub answered {path} with a comment without an id") from error


def _message(response: httpx.Response) -> str:
    """GitHub's own ``message`` of an error answer, short (it names a field, never echoes a token)."""
    try:
        answer = response.json()
    except ValueError:
        return "no details"
    message = answer.get("message") if isinstance(answer, dict) else None
    return str(message)[:200] if message else "no details"


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
