"""One PostgreSQL database: a connection pool, transactions, and errors with kinds.

The URL is handed to libpq as it is, so its environment (``PGPASSWORD``, ``PGPASSFILE``,
``PGSSLMODE``, ``PGSSLROOTCERT``, …) applies; a password belongs there, not in the URL. Every
message names the database by :func:`display_url`, which never includes a password. PostgreSQL's
failures become partnerctl's kinds: a server that cannot be reached (or went away) is
:class:`StoreUnavailable`, a lock held too long :class:`Busy`, a lost serialisation race
:class:`WriteConflict`, a missing schema or privilege :class:`Stalled`.
"""

from __future__ import annotations

import logging
import os
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
        )
        self._opened = False

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (a listener, a leader's lock, a migration)."""
        with self.errors():
            return psycopg.connect(self.conninfo, **self.connect_options)

    def open(self) -> None:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        self.open()
        with self.errors(), self._pool.connection() as conn:
            yield conn

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
            raise StoreUnavailable(f"PostgreSQL at {self.name} is unavailable: {text}; a retry converges once it "
                                   "answers") from error  # fmt: skip
        except psycopg.DataError as error:
            raise IntegrityError(f"PostgreSQL at {self.name}: stored data is not what partnerctl expects "
                                 f"({_first_line(error)})") from error  # fmt: skip
        except psycopg.Error as error:
            raise Stalled(f"PostgreSQL at {self.name}: {_first_line(error)}") from error

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
