"""A local HTTP server answering the GitHub REST endpoints partnerctl calls, with GitHub's documented
JSON shapes, pagination (``Link: <…>; rel="next"``) and rate-limit headers. Driven by the real httpx client.

Endpoints: ``GET /repos/{owner}/{repo}/commits/{sha}/pulls``, ``GET /repos/{owner}/{repo}/pulls/{n}/reviews``,
``POST /repos/{owner}/{repo}/statuses/{sha}`` and ``GET /repos/{owner}/{repo}/commits/{ref}/statuses`` (newest
first), ``GET``/``POST /repos/{owner}/{repo}/issues/{n}/comments`` (oldest first) and
``PATCH /repos/{owner}/{repo}/issues/comments/{id}``. :meth:`FakeGitHub.go_down` makes it answer 502/503 (an outage).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghp_test_token_for_the_local_server_only"
LOGIN = "partnerctl-bot"  # the user TOKEN belongs to
STATUS_STATES = ("error", "failure", "pending", "success")
STAMP = "2026-11-28T10:00:00Z"


def _user(login: str, user_id: int) -> dict[str, Any]:
    return {"login": login, "id": user_id, "node_id": f"U_{user_id}", "type": "User", "site_admin": False,
            "html_url": f"https://github.com/{login}", "url": f"https://api.github.com/users/{login}"}  # fmt: skip


@dataclass
class FakeGitHub:
    repository: str = "scp/partners"
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rate_limited_requests: int = 0  # answer this many requests with a primary rate limit first
    requests: list[str] = field(default_factory=list)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> statuses, newest first
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # issue number -> comments, oldest first
    writes: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of each POST and PATCH answered
    outage: int | None = None  # while set, this status (502, 503) answers every request of ``outage_methods``
    outage_methods: frozenset[str] = frozenset({"GET", "POST", "PATCH"})
    unknown_commits: set[str] = field(default_factory=set)  # a status for one of these is refused (422)
    _ids: int = 5000

    def go_down(self, status: int = 503, *, methods: tuple[str, ...] = ("GET", "POST", "PATCH")) -> None:
        """An outage: ``status`` for every request with one of ``methods`` until :meth:`come_back`."""
        self.outage, self.outage_methods = status, frozenset(methods)

    def come_back(self) -> None:
        self.outage = None

    def comment(self, number: int, login: str, body: str) -> dict[str, Any]:
        """Someone's comment on issue or pull request ``number``, as GitHub keeps it."""
        self._ids += 1
        comment = {
            "id": self._ids, "node_id": f"IC_{self._ids}",
            "url": f"https://api.github.com/repos/{self.repository}/issues/comments/{self._ids}",
            "html_url": f"https://github.com/{self.repository}/pull/{number}#issuecomment-{self._ids}",
            "issue_url": f"https://api.github.com/repos/{self.repository}/issues/{number}",
            "body": body, "user": _user(login, 7 if login != LOGIN else 41), "created_at": STAMP, "updated_at": STAMP,
            "author_association": "MEMBER", "performed_via_github_app": None,
        }  # fmt: skip
        self.comments.setdefault(number, []).append(comment)
        return comment

    def status_of(self, sha: str, context: str) -> list[dict[str, Any]]:
        """The statuses of ``sha`` with ``context``, newest first."""
        return [status for status in self.statuses.get(sha, []) if status["context"] == context]

    def merged_pull(self, number: int, *, merge_sha: str, head_sha: str, body: str) -> None:
        self.pulls[number] = {
            "url": f"https://api.github.com/repos/{self.repository}/pulls/{number}",
            "id": 1000 + number, "number": number, "state": "closed", "title": f"Pull request {number}",
            "user": {"login": "ivy-integration", "id": 7, "type": "User"},
            "body": body, "created_at": "2026-11-27T09:00:00Z", "updated_at": "2026-11-28T09:00:00Z",
            "closed_at": "2026-11-28T09:00:00Z", "merged_at": "2026-11-28T09:00:00Z",
            "merge_commit_sha": merge_sha,
            "head": {"label": "scp:feature", "ref": "feature", "sha": head_sha},
            "base": {"label": "scp:main", "ref": "main", "sha": "0" * 40},
        }  # fmt: skip
        self.reviews.setdefault(number, [])

    def review(self, number: int, login: str, state: str, commit_id: str) -> None:
        reviews = self.reviews.setdefault(number, [])
        reviews.append({
            "id": 80 + len(reviews), "node_id": "PRR_x", "user": {"login": login, "id": 9, "type": "User"},
            "body": "", "state": state, "html_url": "https://github.com/x", "pull_request_url": "https://api.github.com/x",
            "author_association": "MEMBER", "submitted_at": f"2026-11-28T08:{len(reviews):02d}:00Z",
            "commit_id": commit_id,
        })  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        fake = self.fake
        fake.requests.append(self.path)
        if fake.outage is not None and method in fake.outage_methods:
            if fake.outage == 502:  # GitHub's front end answers a bad gateway with an HTML page
                return self._send(502, None, {"Content-Type": "text/html"}, raw=b"<html><body>Unicorn!</body></html>")
            return self._send(fake.outage, {"message": "Service Unavailable"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        if fake.rate_limited_requests > 0:
            fake.rate_limited_requests -= 1
            limit = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1)}
            return self._send(403, {"message": "API rate limit exceeded"}, limit)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.strip("/").split("/")
        prefix = ["repos", *fake.repository.split("/")]
        if segments[:3] != prefix:
            return self._send(404, {"message": "Not Found"})
        rest = segments[3:]
        if method != "GET":
            return self._write(method, rest)
        if len(rest) == 3 and rest[0] == "commits" and rest[2] == "pulls":
            found = [pull for pull in fake.pulls.values() if pull["merge_commit_sha"] == rest[1]]
            return self._page(found, query)
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "reviews" and rest[1].isdigit():
            return self._page(fake.reviews.get(int(rest[1]), []), query)
        if len(rest) == 3 and rest[0] == "commits" and rest[2] == "statuses":
            return self._page(fake.statuses.get(rest[1], []), query)
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and rest[1].isdigit():
            if int(rest[1]) not in fake.pulls:
                return self._send(404, {"message": "Not Found"})
            return self._page(fake.comments.get(int(rest[1]), []), query)
        return self._send(404, {"message": "Not Found"})

    def _write(self, method: str, rest: list[str]) -> None:
        fake = self.fake
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError:
            return self._send(400, {"message": "Problems parsing JSON"})
        if not isinstance(body, dict):
            return self._send(400, {"message": "Problems parsing JSON"})
        fake.writes.append((method, urlsplit(self.path).path))
        if method == "POST" and len(rest) == 2 and rest[0] == "statuses":
            return self._create_status(rest[1], body)
        if method == "POST" and len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and rest[1].isdigit():
            if int(rest[1]) not in fake.pulls:
                return self._send(404, {"message": "Not Found"})
            if not isinstance(body.get("body"), str):
                return self._invalid("IssueComment", "body", "missing_field")
            return self._send(201, fake.comment(int(rest[1]), LOGIN, body["body"]))
        if method == "PATCH" and len(rest) == 3 and rest[:2] == ["issues", "comments"] and rest[2].isdigit():
            found = [c for comments in fake.comments.values() for c in comments if c["id"] == int(rest[2])]
            if not found:
                return self._send(404, {"message": "Not Found"})
            if not isinstance(body.get("body"), str):
                return self._invalid("IssueComment", "body", "missing_field")
            found[0]["body"], found[0]["updated_at"] = body["body"], "2026-11-28T11:00:00Z"
            return self._send(200, found[0])
        return self._send(404, {"message": "Not Found"})

    def _create_status(self, sha: str, body: dict[str, Any]) -> None:
        fake = self.fake
        if sha in fake.unknown_commits:
            return self._send(422, {"message": f"No commit found for SHA: {sha}",
                                    "documentation_url": "https://docs.github.com/rest"})  # fmt: skip
        if body.get("state") not in STATUS_STATES:
            return self._invalid("Status", "state", "invalid")
        description = body.get("description")
        if description is not None and len(str(description)) > 140:
            return self._invalid(
                "Status", "description", "custom", "description is too long (maximum is 140 characters)"
            )
        fake._ids += 1
        status = {
            "url": f"https://api.github.com/repos/{fake.repository}/statuses/{sha}",
            "avatar_url": None, "id": fake._ids, "node_id": f"SC_{fake._ids}", "state": body["state"],
            "description": description, "target_url": body.get("target_url"),
            "context": str(body.get("context") or "default"), "created_at": STAMP, "updated_at": STAMP,
            "creator": _user(LOGIN, 41),
        }  # fmt: skip
        fake.statuses.setdefault(sha, []).insert(0, status)
        self._send(201, status)

    def _invalid(self, resource: str, name: str, code: str, message: str | None = None) -> None:
        error = {"resource": resource, "field": name, "code": code, **({"message": message} if message else {})}
        self._send(422, {"message": "Validation Failed", "errors": [error],
                         "documentation_url": "https://docs.github.com/rest"})  # fmt: skip

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(time.time()) + 3600)}
        if page * per_page < len(items):
            host = self.headers.get("Host")
            base = urlsplit(self.path).path
            headers["link"] = f'<http://{host}{base}?per_page={per_page}&page={page + 1}>; rel="next"'
        self._send(200, chunk, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class RunningGitHub:
    def __init__(self, fake: FakeGitHub) -> None:
        handler = type("Handler", (_Handler,), {"fake": fake})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
