"""Leader election outside Kubernetes: whoever holds a PostgreSQL advisory lock leads.

Each candidate tries ``pg_try_advisory_lock`` on a connection of its own every ``retry_period``.
The holder checks its connection as often; the server releases the lock the moment that session
ends (the process died, the network failed), and a leader whose check has not succeeded for
``renew_deadline`` stops leading before a standby can have taken over. A VM deployment with two
reconcilers needs nothing but the database they already share.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from reconciler.backends.postgresql.database import Database
from reconciler.backends.postgresql.schema import LOCK_SPACE
from reconciler.errors import ReconcilerError

__all__ = ["AdvisoryLockElector"]


class AdvisoryLockElector:
    def __init__(
        self,
        database: Database,
        *,
        name: str = "partnerctl-leader",
        identity: str | None = None,
        lease_duration: float = 15.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.database = database
        self.name = name
        self.namespace = database.name  # where the lock lives, for the loop's messages
        self.identity = identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        self.lease_duration = lease_duration
        self.renew_deadline = lease_duration * 2 / 3
        self.retry_period = max(0.2, lease_duration * 2 / 15)
        self._key = _lock_key(name)
        self._on_change = on_change
        self._connection: psycopg.Connection[Any] | None = None
        self._leading_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def is_leader(self) -> bool:
        return time.monotonic() < self._leading_until

    def start(self) -> None:
        self._thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and release the lock (closing the session does), so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_period * 2 + 5)
        self._leading_until = 0.0
        self._drop()

    def _campaign(self) -> None:
        while not self._stop.is_set():
            was_leader = self.is_leader()
            try:
                leading = self._try()
                self.last_error = None
            except (ReconcilerError, psycopg.Error) as error:
                self.last_error = str(error).splitlines()[0] if str(error) else type(error).__name__
                self._drop()
                leading = False
            if leading:
                self._leading_until = time.monotonic() + self.renew_deadline
            elif not self.is_leader() or self._connection is None:
                self._leading_until = 0.0
            if self._on_change is not None and was_leader != self.is_leader():
                self._on_change(self.is_leader())
            self._stop.wait(self.retry_period)

    def _try(self) -> bool:
        """Hold the lock (acquire it, or prove the session holding it is alive)."""
        if self._connection is None:
            self._connection = self.database.connect(role="leader")
        if self._leading_until > 0.0:
            self._connection.execute("SELECT 1")
            return True
        row = self._connection.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, self._key)).fetchone()
        return bool(row and row[0])

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


def _lock_key(name: str) -> int:
    """A stable int4 for the lock's name (the first key names partnerctl)."""
    value = 0
    for byte in name.encode():
        value = (value * 31 + byte) % 2_147_483_647
    return value
