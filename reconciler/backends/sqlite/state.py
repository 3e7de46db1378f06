"""The embedded state store: one SQLite database under ``--home``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.backends.sqlite.database import Transaction, change_counter, connect, read_counter
from reconciler.engine.audit import AuditEvent
from reconciler.stores.outbox import DeliveryRow, StoredEvent
from reconciler.stores.state import AuditHead, PartnerRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT, offset INTEGER, outbox_cursor INTEGER
);
CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, data TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, partner TEXT NOT NULL, webhook TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook ON deliveries (partner, webhook, status);
"""
_DELIVERY = "id, event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error"


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

    def enqueue(self, event: StoredEvent, deliveries: list[DeliveryRow]) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO events (id, type, data, received_at) VALUES (?, ?, ?, ?)",
                (event.id, event.type, json.dumps(event.data, sort_keys=True), event.received_at),
            )
            self._db.executemany(
                "INSERT INTO deliveries (event_id, partner, webhook, message_id, status, attempts, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                [(event.id, d.partner, d.webhook, d.message_id, d.status, d.next_attempt_at) for d in deliveries],
            )

    def due(self, now: float, limit: int) -> list[DeliveryRow]:
        rows = self._db.execute(
            f"SELECT {_DELIVERY} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        return [DeliveryRow(*row) for row in rows]

    def events(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        unique = sorted(set(event_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT id, type, data, received_at FROM events WHERE id IN ({marks})", chunk):
                found[row[0]] = StoredEvent(row[0], row[1], json.loads(row[2]), row[3])
        return found

    def deliveries(self, event_id: str | None = None) -> list[DeliveryRow]:
        if event_id is None:
            rows = self._db.execute(f"SELECT {_DELIVERY} FROM deliveries ORDER BY id")
        else:
            rows = self._db.execute(f"SELECT {_DELIVERY} FROM deliveries WHERE event_id = ? ORDER BY id", (event_id,))
        return [DeliveryRow(*row) for row in rows]

    def record_attempts(self, rows: list[DeliveryRow]) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ? "
                "WHERE id = ?",
                [(r.status, r.attempts, r.next_attempt_at, r.last_status, r.last_error, r.id) for r in rows],
            )

    def hold(self, partner: str, webhook: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE deliveries SET status = 'held' WHERE partner = ? AND webhook = ? AND status = 'pending'",
                (partner, webhook),
            )

    def release_held(self, partner: str, webhook: str, *, now: float) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ? "
                "WHERE partner = ? AND webhook = ? AND status = 'held'",
                (now, partner, webhook),
            )
        return cursor.rowcount

    def announce(self, entries: list[AuditEvent]) -> None:
        pass  # the audit log is the only record on one machine

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)
