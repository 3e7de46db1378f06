"""One SQLite database file: a connection per thread, write transactions, and errors with kinds.

WAL mode lets readers (the gateway's threads) run beside the writer. Each thread gets its own
connection, so a transaction begun in one thread never swallows another thread's statements.
SQLite's failures become partnerctl's kinds: a damaged file is an :class:`IntegrityError`, a lock
held too long is :class:`Busy`, a file that cannot be opened is :class:`Stalled`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import Busy, IntegrityError, Stalled

__all__ = ["Database", "change_counter", "prepare_folder", "read_counter"]


def prepare_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) or fail with a clear message when something else is in the way."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError as error:
        raise Stalled(f"{folder} is a file, not a folder: point --home (PARTNERCTL_HOME) at a folder") from error
    except NotADirectoryError as error:
        raise Stalled(f"{folder} cannot be created: a part of its path is a file, not a folder") from error
    except PermissionError as error:
        raise Stalled(f"{folder} cannot be created: permission denied") from error
    if not folder.is_dir():
        raise Stalled(f"{folder} is not a folder: point --home (PARTNERCTL_HOME) at a folder")


class Database:
    """A SQLite file opened in WAL mode, created with mode 0600 and ``schema`` on first use."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        prepare_folder(path.parent)
        if not path.exists():
            path.touch(mode=0o600)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        with self.errors():
            self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            with self.errors():
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                # A killed process loses nothing committed with NORMAL in WAL mode; only a power cut could.
                db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._lock:
                # Threads come and go (each asyncio.run has a fresh executor): close what the finished ones
                # left open, or a long-running dispatcher would hold a connection and its cache per pass.
                for thread, old in self._all:
                    if not thread.is_alive():
                        old.close()
                self._all = [(thread, old) for thread, old in self._all if thread.is_alive()]
                self._all.append((threading.current_thread(), db))
        return db

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self.errors():
            return self.connection().execute(statement, parameters)

    def rows(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self.errors():
            return self.connection().execute(statement, parameters).fetchall()

    def one(self, statement: str, parameters: Sequence[Any] = ()) -> Any:
        with self.errors():
            return self.connection().execute(statement, parameters).fetchone()

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.errors():
            self.connection().executemany(statement, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE, then COMMIT, or ROLLBACK when the block raises."""
        db = self.connection()
        with self.errors():
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with self.errors():
                db.execute("ROLLBACK")
            raise
        with self.errors():
            db.execute("COMMIT")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn SQLite's exceptions into partnerctl's kinds, naming the file."""
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                raise Busy(f"{self.path} stayed locked by another process for 30 s; try again") from error
            if "unable to open" in text or "readonly" in text or "disk" in text:
                raise Stalled(f"{self.path} cannot be used: {text}; check the folder and its permissions") from error
            if "no such table" in text or "no such column" in text:
                raise IntegrityError(f"{self.path} is not the database partnerctl expects ({text})") from error
            raise Stalled(f"{self.path}: {text}") from error
        except sqlite3.DatabaseError as error:
            raise IntegrityError(
                f"{self.path} is damaged or not a partnerctl database ({error}); restore it from a backup, "
                "or move it away to start over"
            ) from error

    def close(self) -> None:
        with self._lock:
            for _, db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()


def change_counter(tables: tuple[str, ...]) -> str:
    """DDL for a counter that every change to ``tables`` bumps, by triggers, so that even a hand edit
    with the sqlite3 shell is seen (used to know when a memoised plan is still valid)."""
    statements = [
        "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);",
        "INSERT OR IGNORE INTO changes (id, version) VALUES (1, 0);",
    ]
    for table in tables:
        for operation in ("INSERT", "UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_{operation.lower()}_counts AFTER {operation} ON {table} "
                "BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;"
            )
    return "\n".join(statements)


def read_counter(db: Database) -> int:
    return int(db.one("SELECT version FROM changes WHERE id = 1")[0])
