"""Scope-usage counters of the gateway: counted in memory on each request, written to the journal in batches."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from reconciler import clock
from reconciler.stores.journal import UsageStore

__all__ = ["FLUSH_SECONDS", "KEEP_DAYS", "MAX_KEYS", "UsageCounter"]

log = logging.getLogger("partnerctl.gateway")

FLUSH_SECONDS = 5.0  # a batch is written at most this often (and at close)
MAX_KEYS = 10_000  # counts kept while the store is down; past this, the oldest days' counts are dropped
KEEP_DAYS = 400  # day counts older than this are pruned (the last use is kept for good)
PRUNE_SECONDS = 86_400.0  # at most once a day per process


class UsageCounter:
    """Uses per (partner, scope, day) and the last use per (partner, scope) since the last flush.

    :meth:`count` is all a request pays: a lock and two dict updates, no I/O. A background thread (started
    with the first count) writes the batch every ``flush_seconds`` with one :meth:`UsageStore.count_uses`;
    ``flush_seconds=0`` writes on every count instead (for tests). A failed write keeps the counts for the
    next flush (at most ``max_keys`` of them, the newest days first) and never reaches a request."""

    def __init__(self, store: UsageStore, *, flush_seconds: float = FLUSH_SECONDS, max_keys: int = MAX_KEYS) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_keys = max_keys
        self.dropped = 0  # counts given up while the store was down
        self._lock = threading.Lock()
        self._uses: dict[tuple[str, str, str], int] = {}
        self._last: dict[tuple[str, str], datetime] = {}
        self._flushing = threading.Lock()  # one write at a time, so a failed batch is merged back in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._pruned_at = 0.0

    def count(self, partner: str, scope: str, now: datetime) -> None:
        """One use of ``scope`` by ``partner`` at ``now`` (aware, UTC)."""
        key = (partner, scope, now.date().isoformat())
        with self._lock:
            self._uses[key] = self._uses.get(key, 0) + 1
            seen = self._last.get((partner, scope))
            if seen is None or now > seen:
                self._last[partner, scope] = now
            if self._thread is None and self.flush_seconds > 0 and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="gateway-usage", daemon=True)
                self._thread.start()
        if self.flush_seconds <= 0:
            self.flush()

    def pending(self) -> int:
        """How many (partner, scope, day) counts wait for the next flush."""
        with self._lock:
            return len(self._uses)

    def flush(self) -> bool:
        """Write what was counted since the last flush; False (the counts kept) when the store refused."""
        with self._flushing:
            with self._lock:
                uses, last = self._uses, self._last
                self._uses, self._last = {}, {}
            if not uses and not last:
                return True
            try:
                self.store.count_uses(uses, {pair: moment.isoformat() for pair, moment in last.items()})
            except Exception as error:  # a store that is down (or anything else) never fails a request
                self._keep(uses, last)
                if not self._failing:
                    log.warning("scope usage not written, kept for the next flush: %s: %s", type(error).__name__,
                                error)  # fmt: skip
                self._failing = True
                return False
            if self._failing:
                log.warning("scope usage written again")
            self._failing = False
            return True

    def close(self) -> None:
        """Stop the background thread and write what is left (the gateway's shutdown)."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            if self.flush():
                self._prune()

    def _prune(self) -> None:
        """Drop day counts older than KEEP_DAYS, at most once a day per process."""
        now = clock.now()
        if now.timestamp() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now.timestamp()
        try:
            self.store.prune_usage((now - timedelta(days=KEEP_DAYS)).date().isoformat())
        except Exception as error:  # pruning is housekeeping: the next day tries again
            log.warning("scope usage not pruned: %s: %s", type(error).__name__, error)

    def _keep(self, uses: dict[tuple[str, str, str], int], last: dict[tuple[str, str], datetime]) -> None:
        """Put a batch that was not written back beside what was counted meanwhile, within ``max_keys``."""
        with self._lock:
            for key, count in uses.items():
                self._uses[key] = self._uses.get(key, 0) + count
            for pair, moment in last.items():
                seen = self._last.get(pair)
                if seen is None or moment > seen:
                    self._last[pair] = moment
            if len(self._uses) > self.max_keys:
                newest = sorted(self._uses.items(), key=lambda item: item[0][2], reverse=True)
                self.dropped += sum(count for _, count in newest[self.max_keys :])
                self._uses = dict(newest[: self.max_keys])
            if len(self._last) > self.max_keys:
                latest = sorted(self._last.items(), key=lambda item: item[1], reverse=True)
                self._last = dict(latest[: self.max_keys])
