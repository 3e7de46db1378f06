"""A small Kubernetes API server for tests: exactly the calls partnerctl makes, with the API's shapes.

There is no Kubernetes here, so the real ``kubernetes`` client talks to this server over loopback,
through a kubeconfig file. It keeps objects in memory and follows the documented semantics that
matter to us: a cluster-wide ``resourceVersion`` bumped by every write; optimistic concurrency (a PUT
whose ``metadata.resourceVersion`` is stale gets 409 Conflict with a ``Status`` body); the status
subresource (a PUT of the object ignores ``status``, a PUT of ``/status`` changes only ``status``);
``limit``/``continue`` paging of lists; watches from a resourceVersion (chunked JSON lines of
ADDED/MODIFIED/DELETED events, a 410 Gone ``ERROR`` event when that version is older than the history
kept, ending after ``timeoutSeconds``); and 404 NotFound / 409 AlreadyExists ``Status`` errors.

Served: PartnerIntegrations (partners.scp.dev/v1, with /status), Leases (coordination.k8s.io/v1)
and Events (core/v1).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROUTES = {
    "partnerintegrations": re.compile(
        r"^/apis/partners\.scp\.dev/v1/namespaces/([^/]+)/partnerintegrations(?:/([^/]+))?(/status)?$"
    ),
    "leases": re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?()$"),
    "events": re.compile(r"^/api/v1/namespaces/([^/]+)/events(?:/([^/]+))?()$"),
}
KINDS = {
    "partnerintegrations": ("partners.scp.dev/v1", "PartnerIntegration"),
    "leases": ("coordination.k8s.io/v1", "Lease"),
    "events": ("v1", "Event"),
}


HISTORY = 1000  # watch events kept; a watch from an older resourceVersion gets 410 Gone


@dataclass(frozen=True)
class WatchRequest:
    """A request to stream events: the handler serves it with :meth:`FakeKubernetes.events_after`."""

    plural: str
    namespace: str
    since: int
    timeout: float


@dataclass
class FakeKubernetes:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (plural, ns, name)
    revision: int = 100
    requests: Counter[str] = field(default_factory=Counter)  # "GET|LIST|WATCH|POST|PUT|DELETE plural[/status]"
    conflicts: int = 0  # answer the next N PUTs of partner integrations with 409, as if someone wrote first
    lock: threading.Lock = field(default_factory=threading.Lock)
    history: list[tuple[int, str, str, str, dict[str, Any]]] = field(default_factory=list)  # rv, plural, ns, type, obj
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        for plural, pattern in ROUTES.items():
            match = pattern.match(path)
            if match:
                namespace, name, status = match.group(1), match.group(2), bool(match.group(3))
                watching = method == "GET" and name is None and query.get("watch") in ("true", "1")
                verb = "WATCH" if watching else "LIST" if method == "GET" and name is None else method
                with self.lock:
                    self.requests[f"{verb} {plural}{'/status' if status else ''}"] += 1
                    if watching:
                        since = int(query.get("resourceVersion") or self.revision)
                        return 200, WatchRequest(plural, namespace, since, float(query.get("timeoutSeconds") or 60))
                    return self._handle(plural, method, namespace, name, status, query, body)
        return 404, _status(404, "NotFound", f"the server could not find the requested resource {path}")

    def events_after(self, request: WatchRequest, deadline: float) -> list[dict[str, Any]] | None:
        """The watch events after ``request.since`` (waiting for one until ``deadline``); None when the
        watch is over. A version older than the history kept gets a 410 Gone ERROR event."""
        with self.changed:
            while True:
                if self.history and request.since < self.history[0][0] - 1:
                    return [{"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}]
                wanted = (request.plural, request.namespace)
                found = [{"type": kind, "object": json.loads(json.dumps(obj))}
                         for revision, plural, namespace, kind, obj in self.history
                         if revision > request.since and (plural, namespace) == wanted]  # fmt: skip
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)

    def _handle(
        self, plural: str, method: str, namespace: str, name: str | None, status: bool, query: dict[str, str],
        body: Any,
    ) -> tuple[int, Any]:  # fmt: skip
        key = (plural, namespace, name or "")
        if name is None and method == "GET":
            return 200, self._list(plural, namespace, query)
        if name is None and method == "POST":
            name = body.get("metadata", {}).get("name")
            if not name and body.get("metadata", {}).get("generateName"):
                name = body["metadata"]["generateName"] + uuid.uuid4().hex[:5]
            key = (plural, namespace, name or "")
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            stored = self._stamp({**body, "metadata": {**body.get("metadata", {}), "name": name,
                                                       "namespace": namespace}}, plural, new=True)  # fmt: skip
            if plural == "partnerintegrations":
                stored.pop("status", None)  # status is a subresource: ignored on create
            self.objects[key] = stored
            self._record("ADDED", plural, namespace, stored)
            return 201, stored
        current = self.objects.get(key)
        if current is None:
            return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, current
        if method == "DELETE":
            del self.objects[key]
            self.revision += 1
            gone = json.loads(json.dumps(current))
            gone["metadata"]["resourceVersion"] = str(self.revision)
            self._record("DELETED", plural, namespace, gone)
            return 200, _status(200, "", "deleted", success=True)
        if method == "PUT":
            if plural == "partnerintegrations" and self.conflicts:
                self.conflicts -= 1
                self._stamp(current, plural)  # someone else wrote first
            given = body.get("metadata", {}).get("resourceVersion")
            if given and given != current["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": the '
                                    "object has been modified; please apply your changes to the latest version "
                                    "and try again")  # fmt: skip
            if plural == "partnerintegrations":
                if status:
                    updated = {**current, "status": body.get("status")}
                else:
                    updated = {**body, "status": current.get("status")}
            else:
                updated = body
            updated["metadata"] = {**current["metadata"], **{k: v for k, v in body.get("metadata", {}).items()
                                                            if k in ("labels", "annotations")}}  # fmt: skip
            self.objects[key] = self._stamp(updated, plural)
            self._record("MODIFIED", plural, namespace, self.objects[key])
            return 200, self.objects[key]
        return 405, _status(405, "MethodNotAllowed", f"{method} is not supported here")

    def _list(self, plural: str, namespace: str, query: dict[str, str]) -> dict[str, Any]:
        items = sorted((obj for (p, ns, _), obj in self.objects.items() if p == plural and ns == namespace),
                       key=lambda obj: obj["metadata"]["name"])  # fmt: skip
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        more = start + limit < len(items)
        api_version, kind = KINDS[plural]
        metadata: dict[str, Any] = {"resourceVersion": str(self.revision)}
        if more:
            metadata["continue"] = str(start + limit)
            metadata["remainingItemCount"] = len(items) - start - limit
        return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": metadata, "items": page}

    def _record(self, kind: str, plural: str, namespace: str, obj: dict[str, Any]) -> None:
        """Keep the change for watchers (under the lock) and wake them."""
        self.history.append((int(obj["metadata"]["resourceVersion"]), plural, namespace, kind,
                             json.loads(json.dumps(obj))))  # fmt: skip
        del self.history[:-HISTORY]
        self.changed.notify_all()

    def touch(self, plural: str, namespace: str, name: str) -> None:
        """A change made behind the API's ordinary writes (a test's hand edit): stamped and announced."""
        stored = self.objects[plural, namespace, name]
        self._stamp(stored, plural)
        self._record("MODIFIED", plural, namespace, stored)

    def _stamp(self, obj: dict[str, Any], plural: str, *, new: bool = False) -> dict[str, Any]:
        self.revision += 1
        api_version, kind = KINDS[plural]
        metadata = dict(obj.get("metadata", {}))
        metadata["resourceVersion"] = str(self.revision)
        if new:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        obj.update({"apiVersion": api_version, "kind": kind, "metadata": metadata})
        return obj

    # --- what tests look at -----------------------------------------------------------------------

    def items(self, plural: str, namespace: str = "scp") -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(json.dumps(obj)) for (p, ns, _), obj in sorted(self.objects.items())
                    if p == plural and ns == namespace]  # fmt: skip

    def get(self, plural: str, name: str, namespace: str = "scp") -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, namespace, name))
            return json.loads(json.dumps(found)) if found else None


def _status(code: int, reason: str, message: str, *, success: bool = False) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" if success else "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class RunningKubernetes:
    """``fake`` served on a loopback port, with a kubeconfig file pointing at it."""

    def __init__(self, fake: FakeKubernetes, folder: Path) -> None:
        self.fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.kubeconfig = folder / "kubeconfig"
        write_kubeconfig(self.kubeconfig, self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_kubeconfig(path: Path, url: str) -> None:
    """A kubeconfig whose current context talks to ``url`` in namespace ``scp``."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "scp"}}],
    }))  # fmt: skip


def handler_for(fake: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler class answering every request from ``fake``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body in one segment: no delayed-ACK stall per keep-alive response
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            path, _, raw_query = self.path.partition("?")
            query = dict(part.split("=", 1) for part in raw_query.split("&") if "=" in part)
            length = int(self.headers.get("content-length") or 0)
            code, answer = fake.handle(
                self.command, path, query, json.loads(self.rfile.read(length)) if length else None
            )
            if isinstance(answer, WatchRequest):
                self._stream(answer)
                return
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, request: WatchRequest) -> None:
            """Watch events as chunked JSON lines until the watch's time is up (or it expired: 410)."""
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + request.timeout
            since = request.since
            try:
                while (events := fake.events_after(WatchRequest(request.plural, request.namespace, since,
                                                                request.timeout), deadline)) is not None:  # fmt: skip
                    data = b"".join(json.dumps(event).encode() + b"\n" for event in events)
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    if events[-1]["type"] == "ERROR":
                        break
                    since = int(events[-1]["object"]["metadata"]["resourceVersion"])
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the watcher went away

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    return Handler


def serve(port: int) -> None:
    """Serve an empty fake API on ``port`` until killed (benchmarks run it in a process of its own)."""
    ThreadingHTTPServer(("127.0.0.1", port), handler_for(FakeKubernetes())).serve_forever()


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]))
