"""A local HTTP server answering the GitHub REST endpoints partnerctl calls, with GitHub's documented
JSON shapes, pagination (``Link: <…>; rel="next"``) and rate-limit headers. Driven by the real httpx client.

Endpoints: ``GET /repos/{owner}/{repo}/commits/{sha}/pulls`` and ``GET /repos/{owner}/{repo}/pulls/{n}/reviews``.
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


@dataclass
class FakeGitHub:
    repository: str = "scp/partners"
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rate_limited_requests: int = 0  # answer this many requests with a primary rate limit first
    requests: list[str] = field(default_factory=list)

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
        fake = self.fake
        fake.requests.append(self.path)
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
        if len(rest) == 3 and rest[0] == "commits" and rest[2] == "pulls":
            found = [pull for pull in fake.pulls.values() if pull["merge_commit_sha"] == rest[1]]
            return self._page(found, query)
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "reviews" and rest[1].isdigit():
            return self._page(fake.reviews.get(int(rest[1]), []), query)
        return self._send(404, {"message": "Not Found"})

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

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
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
