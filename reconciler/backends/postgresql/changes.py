"""LISTEN/NOTIFY: a long-running process hears of every committed change to partner records at once.

The ``partners`` trigger notifies ``partnerctl_changes`` at commit, the ``revoked_tokens`` trigger
``partnerctl_revocations``. A listener thread keeps one connection of its own and counts what it
hears on each channel; :meth:`ChangeListener.version` is then a local read, so a gateway checks for
changes on every request without a round trip, and a suspension, narrowing, credential or token
revocation applies on every replica within milliseconds. While the listener is disconnected it
answers None, and the store falls back to reading the counter.

Every take from a rate-limit bucket notifies ``partnerctl_buckets`` with the bucket's key; the
listener notes when each bucket was last taken from (as it connects, from the buckets' rows; then as
it hears), so :meth:`ChangeListener.quiet_since` tells a gateway that a bucket nobody has taken from
for longer than it takes to refill is full, without asking.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from reconciler.backends.postgresql.database import Database
from reconciler.errors import ReconcilerError

__all__ = ["CHANNEL", "REVOCATIONS", "ChangeListener"]

CHANNEL = "partnerctl_changes"
REVOCATIONS = "partnerctl_revocations"
BUCKETS = "partnerctl_buckets"
CHANNELS = (CHANNEL, REVOCATIONS, BUCKETS)
QUIET_KEYS = 100_000  # buckets whose last take is remembered; beyond that, the oldest session start applies
log = logging.getLogger("partnerctl.postgresql")


class ChangeListener:
    def __init__(self, database: Database, *, retry_seconds: float = 1.0) -> None:
        self.database = database
        self.retry_seconds = retry_seconds
        self._heard = dict.fromkeys(CHANNELS, 0)
        self._session = 0  # a new connection may have missed notifications: a new version space
        self._listening = False
        self._listening_since = 0.0  # epoch seconds: nothing before is known
        self._taken: dict[str, float] = {}  # bucket key -> when a take from it was last heard
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._listen, name="postgres-listener", daemon=True)
        self._thread.start()

    def version(self, channel: str = CHANNEL) -> str | None:
        """``listen:<session>:<count>`` of ``channel``, or None while not listening (ask the database instead)."""
        with self._lock:
            return f"listen:{self._session}:{self._heard[channel]}" if self._listening else None

    def quiet_since(self, key: str) -> float | None:
        """Since when (epoch seconds) nobody has taken from bucket ``key`` as far as this listener knows, or
        None while not listening."""
        with self._lock:
            if not self._listening:
                return None
            return max(self._listening_since, self._taken.get(key, 0.0))

    def wait_listening(self, timeout: float) -> bool:
        """Whether the listener is connected within ``timeout`` seconds (tests, start-up)."""
        deadline = time.monotonic() + timeout
        while self.version() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.version() is not None

    def _listen(self) -> None:
        said: str | None = None  # what the log last said about a failure: said once, not every retry
        while not self._stop.is_set():
            try:
                connection = self.database.connect(role="listener")
            except ReconcilerError as error:
                if str(error) != said:
                    log.warning("change listener: %s; retrying every %g s", error, self.retry_seconds)
                    said = str(error)
                self._stop.wait(self.retry_seconds)
                continue
            self._connection = connection
            try:
                for channel in CHANNELS:
                    connection.execute(f"LISTEN {channel}")
                # Listening first: a take from now on is heard, one before is in its bucket's row.
                rows = connection.execute("SELECT key, updated_at FROM rate_limits LIMIT %s",
                                          (QUIET_KEYS + 1,)).fetchall()  # fmt: skip
                with self._lock:
                    self._session += 1
                    self._listening = True
                    known = len(rows) <= QUIET_KEYS
                    self._listening_since = 0.0 if known else time.time()
                    self._taken = {str(key): float(at) for key, at in rows} if known else {}
                if said is not None:
                    log.warning("change listener: listening again")
                    said = None
                while not self._stop.is_set():
                    for notice in connection.notifies(timeout=0.5):
                        with self._lock:
                            if notice.channel in self._heard:
                                self._heard[notice.channel] += 1
                            if notice.channel == BUCKETS:
                                self._note_take(notice.payload)
            except psycopg.Error as error:
                if not self._stop.is_set():
                    said = f"lost its connection ({type(error).__name__})"
                    log.warning("change listener lost its connection (%s); reconnecting", type(error).__name__)
            finally:
                with self._lock:
                    self._listening = False
                self._connection = None
                connection.close()
            self._stop.wait(self.retry_seconds)

    def _note_take(self, key: str) -> None:
        if len(self._taken) >= QUIET_KEYS:  # forget them all: as after a reconnection, nothing is known
            self._taken.clear()
            self._listening_since = time.time()
        self._taken[key] = time.time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
