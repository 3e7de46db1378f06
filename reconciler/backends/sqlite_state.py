"""The embedded state store: one SQLite database under ``--home``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.backends._sqlite import Transaction, change_counter, connect, read_counter
from reconciler.statestore import AuditHead, PartnerRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT, offset INTEGER, outbox_cursor INTEGER
);
CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteStateStore:
    """State in SQLite (WAL): readers such as the gateway never block the reconciler."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, _SCHEMA + change_counter(("partners",)))
        self._path = path

    def version(self) -> str | None:
        return f"{self._path.stat().st_ino}:{read_counter(self._db)}"

    def partners(self) -> dict[str, PartnerRecord]:
        rows = self._db.execute("SELECT key, data FROM partners")
        return {key: PartnerRecord.from_json(json.loads(data)) for key, data in rows}

    def partner(self, key: str) -> PartnerRecord | None:
        row = self._db.execute("SELECT data FROM partners WHERE key = ?", (key,)).fetchone()
        return PartnerRecord.from_json(json.loads(row[0])) if row else None

    def audit_head(self) -> AuditHead:
        row = self._db.execute("SELECT seq, hash, offset, outbox_cursor FROM audit_head WHERE id = 1").fetchone()
        return AuditHead(*row) if row else AuditHead()

    def commit(self, records: list[PartnerRecord], head: AuditHead | None = None) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO partners (key, data) VALUES (?, ?)",
                [(record.key, json.dumps(record.to_json(), sort_keys=True)) for record in records],
            )
            if head is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO audit_head (id, seq, hash, offset, outbox_cursor) VALUES (1, ?, ?, ?, ?)",
                    (head.seq, head.hash, head.offset, head.outbox_cursor),
                )

    def setting(self, name: str) -> Any:
        return self.cached([f"setting|{name}"]).get(f"setting|{name}")

    def put_setting(self, name: str, value: Any) -> None:
        self.cache({f"setting|{name}": value})

    def cached(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM memo WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def cache(self, entries: dict[str, Any]) -> None:
        if entries:
            with self._transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO memo (key, value) VALUES (?, ?)",
                    [(key, json.dumps(value)) for key, value in entries.items()],
                )

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)
