"""Posting alerts to ``--notify`` URLs (DESIGN §12) over HTTP (httpx), off the reconcile loop's path.

Each URL has a bounded queue drained by a daemon thread: an apply only queues (the oldest alert is
dropped, and counted, when a queue is full), each POST has a short timeout, failures are retried with
backoff a few times, and a one-shot command flushes for a few seconds at exit. Notify URLs follow the
webhook rules (SEC-01): https and a public host, loopback http only with the dev flag, checked when
given and again, on every resolved address, right before each POST (no redirects). A URL is never
shown whole: a chat service's incoming-webhook URL is its secret, so messages name its host only.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from reconciler import clock
from reconciler.errors import ReconcilerError, UsageError
from reconciler.manifests.urls import webhook_url_problems
from reconciler.webhooks.alerts import Alert, Collector, cloudevent, slack
from reconciler.webhooks.destinations import resolve_checked

if TYPE_CHECKING:
    from reconciler.engine.reconciler import ApplyOutcome, Reconciler

__all__ = ["Channel", "Notifier", "Target", "target"]

log = logging.getLogger(__name__)

USER_AGENT = "partnerctl-notify/1"
CAPACITY = 1000  # alerts waiting per URL; beyond it the oldest is dropped (and counted)
POST_TIMEOUT = 5.0  # seconds per POST
RETRY_DELAYS = (0.5, 2.0, 10.0, 30.0)  # seconds before each retry; then the alert is given up (and logged)
FLUSH_SECONDS = 3.0  # how long a finishing command waits for its alerts to go out


@dataclass(frozen=True)
class Target:
    """A checked notify URL: where to post (``format=cloudevents`` taken out) and in which format."""

    url: str
    cloudevents: bool

    @property
    def shown(self) -> str:
        """Scheme and host only: the path or query of an incoming-webhook URL is its secret."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"

    @property
    def content_type(self) -> str:
        return "application/cloudevents+json" if self.cloudevents else "application/json"

    def body(self, alert: Alert) -> bytes:
        document = cloudevent(alert) if self.cloudevents else slack(alert)
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def target(url: str, *, allow_loopback: bool) -> Target:
    """``url`` checked as a webhook destination (SSRF, SEC-01); a :class:`UsageError` naming only its host if not.

    The query is the operator's own (some chat services keep their key there) and is not judged; only
    ``format`` is read, and taken out: ``cloudevents``, or ``slack`` (the default)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise UsageError("--notify: not a valid URL; write it as https://host/path") from error
    query = parse_qsl(parts.query, keep_blank_values=True)
    formats = [value for name, value in query if name == "format"]
    shown = f"{parts.scheme or 'no scheme'}://{parts.netloc.rsplit('@', 1)[-1]}/…"
    if formats and formats[-1] not in ("cloudevents", "slack"):
        raise UsageError(f"--notify {shown}: format={formats[-1]} is not a notification format; use cloudevents "
                         "(CloudEvents 1.0) or leave it out (Slack-compatible)")  # fmt: skip
    problems = webhook_url_problems(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                                    allow_loopback=allow_loopback)  # fmt: skip
    if problems:
        hint = "; loopback http only with --dev-allow-loopback-webhooks" if parts.scheme == "http" else ""
        raise UsageError(f"--notify {shown}: the URL {problems[0]} (notify URLs follow the webhook rules, "
                         f"SEC-01{hint})")  # fmt: skip
    rest = urlencode([(name, value) for name, value in query if name != "format"])
    return Target(urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), bool(formats and
                  formats[-1] == "cloudevents"))  # fmt: skip


@dataclass(eq=False)
class _Pending:
    body: bytes
    kind: str
    attempts: int = 0
    due: float = 0.0  # time.monotonic()
    sending: bool = False


class Channel:
    """One notify URL: a bounded queue and the daemon thread that posts from it (started with the first alert)."""

    def __init__(
        self,
        destination: Target,
        *,
        allow_loopback: bool,
        capacity: int = CAPACITY,
        timeout: float = POST_TIMEOUT,
        delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.target, self.allow_loopback = destination, allow_loopback
        self.capacity, self.timeout, self.delays = capacity, timeout, tuple(delays)
        self.sent = self.dropped = self.failed = 0
        self._items: list[_Pending] = []  # oldest first; an item being retried keeps its place
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, alert: Alert) -> None:
        """Queue ``alert``; never waits on the network."""
        item = _Pending(self.target.body(alert), alert.kind, due=time.monotonic())
        with self._changed:
            if self._closed:
                return
            if len(self._items) >= self.capacity:
                oldest = next((index for index, queued in enumerate(self._items) if not queued.sending), None)
                if oldest is None:
                    return
                del self._items[oldest]
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("notify %s: queue full, %d alerts dropped so far (oldest first)", self.target.shown,
                                self.dropped)  # fmt: skip
            self._items.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._items)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty (retries included); True if it did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._items:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Flush for at most ``timeout`` seconds, then stop; what is left is logged and dropped."""
        self.flush(timeout)
        with self._changed:
            self._closed = True
            left = len(self._items)
            self._items.clear()
            self._changed.notify_all()
        if left:
            log.warning("notify %s: %d alert%s not delivered before exit (still being retried)", self.target.shown,
                        left, "s" if left != 1 else "")  # fmt: skip

    # --- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while (item := self._take()) is not None:
                problem, retry = self._post(client, item.body)
                with self._changed:
                    item.sending = False
                    item.attempts += 1
                    if problem is not None and retry and item.attempts <= len(self.delays):
                        item.due = time.monotonic() + self.delays[item.attempts - 1]
                    elif item in self._items:
                        self._items.remove(item)
                        if problem is None:
                            self.sent += 1
                        else:
                            self.failed += 1
                            log.warning("notify %s: %s alert not delivered after %d attempt%s: %s", self.target.shown,
                                        item.kind, item.attempts, "s" if item.attempts != 1 else "",
                                        problem)  # fmt: skip
                    self._changed.notify_all()

    def _take(self) -> _Pending | None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                waiting = [item for item in self._items if not item.sending]
                ready = next((item for item in waiting if item.due <= now), None)
                if ready is not None:
                    ready.sending = True
                    return ready
                self._changed.wait(min(item.due for item in waiting) - now if waiting else None)
        return None

    def _post(self, client: httpx.Client, body: bytes) -> tuple[str | None, bool]:
        """POST to an address checked just now; (what went wrong or None, whether a retry may help)."""
        parts = urlsplit(self.target.url)
        host = parts.hostname or ""
        try:
            address = resolve_checked(host, parts.port or (443 if parts.scheme == "https" else 80),
                                      allow_loopback=self.allow_loopback)  # fmt: skip
        except socket.gaierror:
            return f"{host} does not resolve", True
        except OSError as error:
            return f"refused: {error}", False
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"content-type": self.target.content_type, "user-agent": USER_AGENT,
                   "host": parts.netloc.rsplit("@", 1)[-1]}  # fmt: skip
        try:
            response = client.post(url, content=body, headers=headers, extensions={"sni_hostname": host})
        except httpx.TimeoutException:
            return "timed out", True
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: connection failed", True
        if 200 <= response.status_code < 300:
            return None, False
        status = response.status_code
        return f"answered {status}", status >= 500 or status in (408, 425, 429)


class Notifier:
    """The apply listener of ``--notify``: collects each apply's alerts and queues them for every URL."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        interval: timedelta,
        allow_loopback: bool = False,
        capacity: int = CAPACITY,
        timeout: float = POST_TIMEOUT,
        delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.collector = Collector(interval=interval)
        self._failures: dict[str, datetime] = {}  # kind of error -> when an apply that raised it was last alerted
        self.channels = [Channel(each, allow_loopback=allow_loopback, capacity=capacity, timeout=timeout, delays=delays)
                         for each in targets]  # fmt: skip

    def applied(self, outcome: ApplyOutcome, engine: Reconciler) -> None:
        """Never raises for the journal or a notify URL: an alert that cannot be collected now is collected
        at the next apply (the cursor did not move)."""
        try:
            alerts = self.collector.collect(
                engine.stores.journal,
                results=outcome.results,
                blocked=outcome.plan.blocked if outcome.plan is not None else None,
                revision=outcome.revision,
                now=clock.now(),
            )
        except ReconcilerError as error:
            log.warning("notifications skipped this pass: %s", error)
            return
        for alert in alerts:
            for channel in self.channels:
                channel.put(alert)

    def apply_failed(self, error: ReconcilerError, engine: Reconciler) -> None:
        """An apply that stopped early (a store or the repository unreachable, the lock held too long): one alert
        per kind of error and interval, remembered in memory (the journal may be what failed). The error's text
        stays in the log: it may name hosts and paths."""
        now, kind = clock.now(), type(error).__name__
        last = self._failures.get(kind)
        if last is not None and now - last < self.collector.interval:
            return
        self._failures[kind] = now
        text = f"an apply stopped before it finished ({kind}); see the reconciler's log"
        alert = Alert("apply.failed", None, now, text, {"event": "apply.failed", "error": kind}, detail=kind)
        for channel in self.channels:
            channel.put(alert)

    def close(self, timeout: float = FLUSH_SECONDS) -> None:
        """Give the queued alerts up to ``timeout`` seconds in all, then stop."""
        deadline = time.monotonic() + timeout
        for channel in self.channels:
            channel.close(max(0.0, deadline - time.monotonic()))
