"""The webhook dispatcher: sends due deliveries from the outbox, retries, and watches endpoints (LOG-01).

Each pass takes the due deliveries, shapes and signs each payload, checks the destination again
(SSRF) and sends them with one pooled async httpx client, bounded overall and per endpoint. Results
are written back in one go under the installation lock, with the audit events they cause:

- 2xx: delivered; 410: the partner retired the endpoint, it is deactivated and its deliveries held;
- 429 or 503 with ``Retry-After``: retried then; other failures: retried on the schedule (with
  jitter), ``failed`` after the last attempt; redirects are never followed;
- 5xx, timeouts and unreachable endpoints count towards LOG-01 (failing, then flagged or
  deactivated); deliveries to a deactivated webhook are held and resume when a ping succeeds.

Replayed deliveries (``webhooks replay``) wait in a lane of their own, so a large replay never starves
live traffic: a pass takes live deliveries first and fills what is left, up to ``replay_batch``, from
the replay lane; while it sends replays, live deliveries published meanwhile join the pass every
``live_watch`` seconds, and at each sending slot (overall and per endpoint) a waiting live delivery goes
before every waiting replayed one. A pass holds at most one batch of each lane in memory.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from reconciler import clock
from reconciler.engine.journal import Journal
from reconciler.engine.status import deactivate, webhook_result
from reconciler.errors import ReconcilerError, Transient
from reconciler.stores import Stores
from reconciler.stores.records import DeliveryAttempt, DeliveryRow, PartnerRecord, StoredEvent
from reconciler.vocabulary import DeliveryStatus, WebhookState
from reconciler.webhooks.events import Shaper
from reconciler.webhooks.messages import Delivery
from reconciler.webhooks.slots import Slots

__all__ = ["DEFAULT_SCHEDULE", "Dispatcher", "Session", "Transport", "parse_schedule"]

# Seconds before attempt 1, 2, …: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_RETRY_AFTER = 24 * 3600
Outcome = tuple[DeliveryRow, Delivery | DeliveryStatus]  # a delivery and what became of it in a pass


def parse_schedule(text: str) -> tuple[int, ...]:
    """``0,5,300`` -> (0, 5, 300); ValueError naming the expected form otherwise."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError("a schedule is comma-separated seconds, e.g. 0,5,300,1800") from error
    if not values or any(value < 0 for value in values):
        raise ValueError("a schedule is comma-separated seconds, e.g. 0,5,300,1800")
    return values


class Session(Protocol):
    async def deliver(
        self, url: str, event_type: str, data: dict[str, Any], *, secrets: Sequence[str], message_id: str
    ) -> Delivery:
        """Check the destination (SSRF), sign with each of ``secrets`` and send one message; failures are
        outcomes, not exceptions."""


class Transport(Protocol):
    """How deliveries reach partners (:class:`reconciler.webhooks.sender.HttpTransport`)."""

    def session(self, *, concurrency: int, timeout: float) -> AbstractAsyncContextManager[Session]:
        """A pooled client for one pass."""


class Dispatcher:
    def __init__(
        self,
        stores: Stores,
        transport: Transport,
        *,
        schedule: tuple[int, ...] = DEFAULT_SCHEDULE,
        concurrency: int = 64,
        per_endpoint: int = 8,
        timeout: float = 15.0,
        batch: int = 500,
        replay_batch: int | None = None,
        live_watch: float = 0.05,
        on_results: Callable[[Counter[str]], None] | None = None,
    ) -> None:
        self.stores, self.transport = stores, transport
        self.outbox, self.secrets = stores.journal, stores.secrets
        self.journal = Journal(stores, actor="dispatcher")
        self.schedule = schedule
        self.concurrency, self.per_endpoint, self.timeout, self.batch = concurrency, per_endpoint, timeout, batch
        # Replayed deliveries fill what live ones leave of a pass, and at most this many.
        self.replay_batch = replay_batch if replay_batch is not None else batch
        self.live_watch = live_watch  # how often a pass carrying replays looks for live deliveries to take in
        self.on_results = on_results  # e.g. metrics: how many deliveries ended in each status
        # Outcomes of a pass whose recording failed (the store went away): recorded before anything new is
        # claimed, so what was sent is not sent again when its claim runs out.
        self._unrecorded: tuple[list[Outcome], list[DeliveryAttempt]] | None = None
        self._pruned_at = 0.0

    def longest_pass(self) -> float:
        """The longest one pass can take: every delivery to one endpoint, each timing out. A store shared by
        several workers keeps a pass's deliveries from the others for that long (then, the worker is dead)."""
        return (math.ceil(self.batch / self.per_endpoint) + 1) * self.timeout

    async def run_once(self) -> int:
        """One pass over the deliveries due now; how many were attempted."""
        if self._unrecorded is not None:
            await asyncio.to_thread(self._record, *self._unrecorded)
            self._unrecorded = None
        now, lease = clock.now().timestamp(), self.longest_pass()
        due = self.outbox.due(now, self.batch, lease=lease)
        if (room := min(self.batch - len(due), self.replay_batch)) > 0:  # live first, replays after
            due += self.outbox.due(now, room, lease=lease, replaying=True)
        if not due:
            return 0
        shaper = Shaper(self.outbox.setting("catalog") or {"spec": {"scopes": [], "events": []}})
        records: dict[str, PartnerRecord | None] = {}
        events: dict[str, StoredEvent] = self.outbox.events([row.event_id for row in due])
        secrets: dict[tuple[str, str], list[str]] = {}
        overall = Slots(self.concurrency)
        endpoints: dict[str, Slots] = {}
        async with self.transport.session(concurrency=self.concurrency, timeout=self.timeout) as session:

            async def attempt(row: DeliveryRow) -> Outcome:
                if row.partner not in records:
                    records[row.partner] = self.stores.partners.partner(row.partner)
                record = records[row.partner]
                hook = record.webhooks.get(row.webhook) if record is not None else None
                if record is None or hook is None or not record.usable:
                    return row, DeliveryStatus.CANCELLED
                if hook.state == WebhookState.DEACTIVATED:
                    return row, DeliveryStatus.HELD
                event = events.get(row.event_id)
                if (row.partner, row.webhook) not in secrets:
                    secrets[row.partner, row.webhook] = self.secrets.webhook_signing_secrets(
                        row.partner, row.webhook, now=clock.now()
                    )
                signing = secrets[row.partner, row.webhook]
                if event is None or not signing:
                    return row, DeliveryStatus.CANCELLED
                data = shaper.shape(record, row.webhook, event)
                endpoint = endpoints.setdefault(urlsplit(hook.url).netloc, Slots(self.per_endpoint))
                live = row.status != DeliveryStatus.REPLAYING
                async with overall.held(live=live), endpoint.held(live=live):
                    return row, await session.deliver(hook.url, event.type, data, secrets=signing,
                                                      message_id=row.message_id)  # fmt: skip

            sending = asyncio.ensure_future(asyncio.gather(*(attempt(row) for row in due)))
            joined: list[asyncio.Future[list[Outcome]]] = []
            # While a pass sends replayed deliveries, live ones published meanwhile join it at once (and go
            # first at every slot) instead of waiting for the pass to end.
            live = sum(row.status != DeliveryStatus.REPLAYING for row in due)
            while live < len(due) and live < self.batch:  # a pass holds at most a batch of each lane
                finished, _ = await asyncio.wait({sending}, timeout=self.live_watch)
                if finished:
                    break
                joining = self.outbox.due(clock.now().timestamp(), self.batch - live, lease=lease)
                live += len(joining)
                if joining:
                    events.update(self.outbox.events([row.event_id for row in joining]))
                    due += joining
                    joined.append(asyncio.ensure_future(asyncio.gather(*(attempt(row) for row in joining))))
            outcomes: list[Outcome] = list(await sending)
            for more in joined:
                outcomes += await more
        attempted = clock.now().isoformat()
        log = [_logged(row, outcome, events.get(row.event_id), attempted) for row, outcome in outcomes
               if isinstance(outcome, Delivery)]  # fmt: skip
        try:
            await asyncio.to_thread(self._record, outcomes, log)
        except Transient:
            self._unrecorded = (outcomes, log)
            raise
        return len(due)

    def run(
        self,
        *,
        once: bool,
        interval: float,
        stop: Any = None,
        active: Callable[[], bool] | None = None,
        on_error: Callable[[ReconcilerError], None] | None = None,
        on_pass: Callable[[int], None] | None = None,
    ) -> None:
        """Pass after pass; ``once``: until nothing is due now. ``stop``: a threading.Event to end the loop.
        ``active``: passes run only while it says so (the elected leader). ``on_error``: told of a failed
        pass, which is then retried after ``interval`` (without it, the error ends the run). ``on_pass``:
        told how many deliveries each successful pass attempted (readiness)."""
        while True:
            try:
                attempted = asyncio.run(self.run_once()) if active is None or active() else 0
                if on_pass is not None:
                    on_pass(attempted)
            except ReconcilerError as error:
                if on_error is None:
                    raise
                on_error(error)
                if once:
                    return
                attempted = 0
            if once and attempted == 0:
                return
            if stop is not None and stop.is_set():
                return
            if attempted == 0:
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)

    # --- results ----------------------------------------------------------------------------------

    def _record(
        self, outcomes: list[Outcome], log: list[DeliveryAttempt]
    ) -> None:
        now = clock.now()
        with self.journal.exclusive():
            records: dict[str, PartnerRecord] = {}
            dirty: set[str] = set()
            rows, audit, held = [], [], []
            for row, outcome in outcomes:
                if isinstance(outcome, DeliveryStatus):  # not attempted: held or cancelled
                    rows.append(replace(row, status=outcome))
                    continue
                record = records.get(row.partner) or self.stores.partners.partner(row.partner)
                if record is None or row.webhook not in record.webhooks:
                    rows.append(replace(row, status=DeliveryStatus.CANCELLED))
                    continue
                records[row.partner] = record
                hook = record.webhooks[row.webhook]
                rows.append(self._next(row, outcome, now))
                before = (hook.state, hook.consecutive_failures, record.last_successful_sync)
                if outcome.status == 410:
                    changes = deactivate(record, hook, "the endpoint answered 410 Gone")
                else:
                    counts = outcome.status is None or outcome.status >= 500
                    changes = webhook_result(record, hook, ok=outcome.ok, counts=counts, error=outcome.error, now=now)
                if hook.state == WebhookState.DEACTIVATED:
                    held.append((row.partner, row.webhook))
                if (hook.state, hook.consecutive_failures) != before[:2] or _sync_stale(before[2], now):
                    dirty.add(row.partner)
                else:
                    record.last_successful_sync = before[2]  # recent enough: spare the write
                audit += [self.journal.event(event, row.partner, details) for event, details in changes]
            self.outbox.record_attempts(rows)
            self.outbox.log_attempts(log)
            if time.monotonic() - self._pruned_at > PRUNE_INTERVAL:  # the log keeps 30 days
                self.outbox.prune_attempts((now - timedelta(days=LOG_DAYS)).isoformat())
                self._pruned_at = time.monotonic()
            if self.on_results is not None:
                self.on_results(Counter(str(row.status) for row in rows))
            for partner, webhook in set(held):
                self.outbox.hold(partner, webhook)
            # Health follows the webhooks (DEGRADED while one fails): the journal derives it.
            self.journal.record([records[key] for key in sorted(dirty)], audit, now=now)

    def _next(self, row: DeliveryRow, outcome: Delivery, now: datetime) -> DeliveryRow:
        attempts = row.attempts + 1
        if outcome.ok:
            return replace(row, status=DeliveryStatus.DELIVERED, attempts=attempts, last_status=outcome.status,
                           last_error=None)  # fmt: skip
        if outcome.status == 410:
            return replace(row, status=DeliveryStatus.HELD, attempts=attempts, last_status=410,
                           last_error=outcome.error)  # fmt: skip
        wait = _retry_after(outcome.retry_after, now) if outcome.status in (429, 503) else None
        if wait is None:
            if attempts >= len(self.schedule):
                return replace(row, status=DeliveryStatus.FAILED, attempts=attempts, last_status=outcome.status,
                               last_error=outcome.error)  # fmt: skip
            wait = self.schedule[attempts] * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security
        lane = DeliveryStatus.REPLAYING if row.status == DeliveryStatus.REPLAYING else DeliveryStatus.PENDING
        return replace(row, status=lane, attempts=attempts, next_attempt_at=now.timestamp() + wait,
                       last_status=outcome.status, last_error=outcome.error)  # fmt: skip


SYNC_WRITE_INTERVAL = 60.0
LOG_DAYS = 30  # the delivery log's window (DESIGN §8)
PRUNE_INTERVAL = 3600.0


def _logged(row: DeliveryRow, outcome: Delivery, event: StoredEvent | None, attempted: str) -> DeliveryAttempt:
    """The delivery log's entry for one attempt: ids, type, outcome; nothing of the payload."""
    status = "delivered" if outcome.ok else "held" if outcome.status == 410 else "failed"
    return DeliveryAttempt(row.message_id, row.partner, row.webhook, event.type if event else "unknown",
                           row.attempts + 1, attempted, status, outcome.status, outcome.error, outcome.latency_ms)


def _sync_stale(last: str | None, now: datetime) -> bool:
    """lastSuccessfulSync is written at most once a minute per partner."""
    return last is None or (now - datetime.fromisoformat(last)).total_seconds() >= SYNC_WRITE_INTERVAL


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None when absent."""
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (moment - now).total_seconds()), MAX_RETRY_AFTER)
