"""What both SQLite backends share: how to open a database and run a write transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating with mode 0600) a WAL database; readers never block the writer."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        path.touch(mode=0o600)
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # A killed process loses nothing committed with NORMAL in WAL mode; only a power cut could.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


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


def read_counter(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT version FROM changes WHERE id = 1").fetchone()[0])


class Transaction:
    """``with Transaction(db):`` — BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
