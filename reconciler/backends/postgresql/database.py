"""One PostgreSQL database: a connection pool, transactions, and errors with kinds.

The URL is handed to libpq as it is, so its environment (``PGPASSWORD``, ``PGPASSFILE``,
``PGSSLMODE``, ``PGSSLROOTCERT``, …) applies; a password belongs there, not in the URL. Every
message names the database by :func:`display_url`, which never includes a password. PostgreSQL's
failures become partnerctl's kinds: a server that cannot be reached (or went away) is
:class:`StoreUnavailable`, a lock held too long :class:`Busy`, a lost serialisation race
:class:`WriteConflict`, a missing schema or privilege :class:`Stalled`.

Bad days: a connection the server closed while it sat in the pool (a restart, a failover,
``pg_terminate_backend``) is replaced before anyone uses it, so only statements in flight fail; and
while the pool cannot connect, a caller tries once itself and fails at once with the server's reason,
instead of waiting POOL_TIMEOUT for a connection that cannot come (a gateway answers 503 at once).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.errors import Busy, IntegrityError, Stalled, StoreUnavailable, UsageError, WriteConflict

__all__ = ["Database", "display_url", "libpq_url", "split_options"]

SCHEMES = ("postgresql", "postgres")
# Options of ours in the URL's query; libpq never sees them.
OWN_OPTIONS = ("mirror", "pool")
DEFAULT_POOL = 10
# The pool's own warnings repeat what our errors say, once per retry; ours name the database once.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 10.0
# How long a caller waits on the pool before looking again whether the server is reachable at all.
WAIT_SLICE = 0.25
# While the server is unreachable, callers within this long of a failed attempt share its verdict.
PROBE_SECONDS = 0.5


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without partnerctl's own query options, and those options."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UsageError(f"--state: {display_url(url)} is not a postgresql:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in OWN_OPTIONS}
    rest = [(key, value) for key, value in query if key not in OWN_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), own


def libpq_url(url: str) -> str:
    return split_options(url)[0]


def display_url(url: str) -> str:
    """``postgresql://USER@HOST:PORT/DB`` for messages: never a password, nor the query."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or os.environ.get("PGHOST", "localhost")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class Database:
    """A pool of connections (autocommit; :meth:`transaction` for several statements at once)."""

    def __init__(self, url: str, *, max_size: int | None = None) -> None:
        conninfo, own = split_options(url)
        self.url, self.name = url, display_url(url)
        self.conninfo = conninfo
        size = max_size or _pool_size(own.get("pool"), self.name)
        self.connect_options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo and "PGCONNECT_TIMEOUT" not in os.environ:
            self.connect_options["connect_timeout"] = CONNECT_TIMEOUT
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=size,
            kwargs=self.connect_options,
            open=False,
            timeout=POOL_TIMEOUT,
            name="partnerctl",
            reconnect_timeout=0,
            reconnect_failed=self._pool_cannot_connect,
            configure=self._pool_connected,
        )
        self._opened = False
        self._unreachable = threading.Event()  # the pool's last attempt to connect failed
        self._probe_lock = threading.Lock()
        self._probe_failed: tuple[float, str] | None = None  # when our own last attempt failed, and why

    def connect(self, *, role: str | None = None) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (a listener, a leader's lock, a migration); ``role``
        names it in ``pg_stat_activity.application_name`` (``partnerctl listener``)."""
        options = dict(self.connect_options)
        if role is not None and "application_name" not in self.conninfo:
            options["application_name"] = f"partnerctl {role}"
        with self.errors():
            return psycopg.connect(self.conninfo, **options)

    def open(self) -> None:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool that the server has not closed; back into the pool after the block."""
        self.open()
        with self.errors():
            conn = self._checkout()
            try:
                with conn:  # psycopg's: commit or roll back; the pool keeps the connection open
                    yield conn
            finally:
                self._pool.putconn(conn)  # a broken one is replaced by the pool

    def _checkout(self) -> psycopg.Connection[Any]:
        deadline = time.monotonic() + POOL_TIMEOUT
        while True:
            if self._unreachable.is_set():
                self._probe()  # raises at once while the server still cannot be reached
            try:
                conn = self._pool.getconn(timeout=max(min(WAIT_SLICE, deadline - time.monotonic()), 0.001))
            except PoolTimeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            if _alive(conn):
                return conn
            self._pool.putconn(conn)

    def _probe(self) -> None:
        """While the pool cannot connect: one attempt of our own, its verdict shared for PROBE_SECONDS."""
        with self._probe_lock:
            if self._probe_failed is not None and time.monotonic() - self._probe_failed[0] < PROBE_SECONDS:
                raise StoreUnavailable(self._unavailable(self._probe_failed[1]))
            try:
                psycopg.connect(self.conninfo, **self.connect_options).close()
            except psycopg.OperationalError as error:
                self._probe_failed = (time.monotonic(), _first_line(error))
                raise
            self._probe_failed = None
            self._unreachable.clear()  # the server answers again: the pool will connect

    def _pool_cannot_connect(self, pool: ConnectionPool[Any]) -> None:
        self._unreachable.set()

    def _pool_connected(self, conn: psycopg.Connection[Any]) -> None:
        self._unreachable.clear()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on one connection; rolled back when the block raises."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def rows(self, statement: str | sql.Composable, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self.connection() as conn:
            return conn.execute(statement, parameters).fetchall()  # type: ignore[arg-type]

    def one(self, statement: str | sql.Composable, parameters: Sequence[Any] | dict[str, Any] = ()) -> Any:
        with self.connection() as conn:
            return conn.execute(statement, parameters).fetchone()  # type: ignore[arg-type]

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn psycopg's exceptions into partnerctl's kinds, naming the database (never its password)."""
        try:
            yield
        except PoolTimeout as error:
            raise StoreUnavailable(
                f"PostgreSQL at {self.name}: no connection within {POOL_TIMEOUT:.0f} s (server down, unreachable or "
                "out of connections); a retry converges once it answers"
            ) from error
        except psycopg.errors.LockNotAvailable as error:
            raise Busy(f"PostgreSQL at {self.name}: another partnerctl holds the writer lock; try again") from error
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as error:
            raise WriteConflict(f"PostgreSQL at {self.name}: a concurrent write won ({_first_line(error)}); "
                                "a rerun converges") from error  # fmt: skip
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as error:
            raise Stalled(f"PostgreSQL at {self.name} has no partnerctl schema ({_first_line(error)}): "
                          "run `partnerctl --state URL db migrate`") from error  # fmt: skip
        except psycopg.errors.InsufficientPrivilege as error:
            raise Stalled(f"PostgreSQL at {self.name}: permission denied ({_first_line(error)}); grant the "
                          "partnerctl role its privileges (README: PostgreSQL)") from error  # fmt: skip
        except psycopg.OperationalError as error:
            text = _first_line(error)
            if "authentication" in text or "password" in text or "does not exist" in text:
                raise Stalled(f"PostgreSQL at {self.name} refused the connection: {text}; check the user, "
                              "database and PGPASSWORD / PGPASSFILE") from error  # fmt: skip
            raise StoreUnavailable(self._unavailable(text)) from error
        except psycopg.DataError as error:
            raise IntegrityError(f"PostgreSQL at {self.name}: stored data is not what partnerctl expects "
                                 f"({_first_line(error)})") from error  # fmt: skip
        except psycopg.Error as error:
            raise Stalled(f"PostgreSQL at {self.name}: {_first_line(error)}") from error

    def _unavailable(self, reason: str) -> str:
        return f"PostgreSQL at {self.name} is unavailable: {reason}; a retry converges once it answers"

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def _pool_size(value: str | None, name: str) -> int:
    if value is None:
        return DEFAULT_POOL
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise UsageError(f"--state {name}?pool={value}: the pool size is a number from 1 to 1000")
    return int(value)


def _alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether a pooled connection still works, without a round trip in the usual case: an idle connection
    has nothing to read unless the server said goodbye (shutdown, terminated backend) or closed it."""
    if conn.closed or conn.broken:
        return False
    if _quiet(conn.fileno()):
        return True
    try:  # something arrived unasked (most likely a farewell), or we could not look: a round trip tells
        conn.execute("")
    except psycopg.Error:
        return False
    return True


def _quiet(fd: int) -> bool:
    """Nothing to read on ``fd`` right now (poll: no limit on descriptor numbers, unlike select)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        return not select.select([fd], [], [], 0)[0]
    except (OSError, ValueError):
        return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
