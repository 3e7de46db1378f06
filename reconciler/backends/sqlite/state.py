"""The embedded live state: partner records and the installation journal in one SQLite database.

``state.db`` under ``--home`` holds the partner records, the audit chain's committed head, settings,
the memo, the webhook outbox, and what gateway processes share (rate-limit buckets, keys seen once,
revoked tokens with a change counter of their own, scope-usage counters); the chain itself is
``audit.jsonl`` beside it. When the records live in the same database as the head (the default), a
partner's record and the audit entries that explain it commit in one transaction. When they live
elsewhere (Kubernetes), the head commits first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler import clock
from reconciler.backends.sqlite.audit_file import AuditFile
from reconciler.backends.sqlite.database import Database, change_counter, read_counter
from reconciler.backends.sqlite.lock import installation_lock
from reconciler.errors import IntegrityError
from reconciler.stores.audit import chain
from reconciler.stores.journal import USAGE_DAYS, Bucket
from reconciler.stores.partners import PartnerStore
from reconciler.stores.records import (
    AuditEvent,
    AuditHead,
    DeliveryAttempt,
    DeliveryRow,
    PartnerRecord,
    ScopeUse,
    StoredEvent,
)
from reconciler.vocabulary import DeliveryStatus

__all__ = ["SCHEMA", "SqliteJournal", "SqlitePartners"]

SCHEMA = (
    """
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
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, partner TEXT NOT NULL, webhook TEXT NOT NULL,
    event_type TEXT NOT NULL, attempt INTEGER NOT NULL, attempted_at TEXT NOT NULL, status TEXT NOT NULL,
    http_status INTEGER, error TEXT, latency_ms INTEGER
);
CREATE INDEX IF NOT EXISTS delivery_attempts_by_partner ON delivery_attempts (partner, attempted_at);
CREATE INDEX IF NOT EXISTS delivery_attempts_by_time ON delivery_attempts (attempted_at);
CREATE TABLE IF NOT EXISTS rate_limits (key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS remembered_keys (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS revocation_changes (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO revocation_changes (id, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS revoked_tokens_counts AFTER INSERT ON revoked_tokens
BEGIN UPDATE revocation_changes SET version = version + 1 WHERE id = 1; END;
CREATE TABLE IF NOT EXISTS scope_usage (
    partner TEXT NOT NULL, scope TEXT NOT NULL, day TEXT NOT NULL, uses INTEGER NOT NULL,
    PRIMARY KEY (partner, scope, day)
);
CREATE INDEX IF NOT EXISTS scope_usage_by_day ON scope_usage (day);
CREATE TABLE IF NOT EXISTS scope_last_use (
    partner TEXT NOT NULL, scope TEXT NOT NULL, last_used TEXT NOT NULL, PRIMARY KEY (partner, scope)
);
"""
    + change_counter(("partners",))
)
# Expired keys seen once and revoked tokens past their expiry are deleted at most this often per process.
PRUNE_SECONDS = 60.0
_ATTEMPT = ("message_id, partner, webhook, event_type, attempt, attempted_at, status, http_status, error, "
            "latency_ms")
_DELIVERY = "id, event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error"


class SqlitePartners:
    """Partner records in SQLite (WAL): readers such as the gateway never block the reconciler."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def version(self) -> str | None:
        try:
            inode = self.database.path.stat().st_ino
        except FileNotFoundError:
            inode = 0
        return f"{inode}:{read_counter(self.database)}"

    def partners(self) -> dict[str, PartnerRecord]:
        rows = self.database.rows("SELECT key, data FROM partners")
        return {key: _record(key, data) for key, data in rows}

    def partner(self, key: str) -> PartnerRecord | None:
        row = self.database.one("SELECT data FROM partners WHERE key = ?", (key,))
        return _record(key, row[0]) if row else None

    def save(self, records: list[PartnerRecord]) -> None:
        if records:
            with self.database.transaction():
                self.write(records)

    def write(self, records: list[PartnerRecord]) -> None:
        """Write inside the caller's transaction."""
        self.database.executemany(
            "INSERT OR REPLACE INTO partners (key, data) VALUES (?, ?)",
            [(record.key, json.dumps(record.to_json(), sort_keys=True)) for record in records],
        )

    def announce(self, entries: list[AuditEvent]) -> None:
        pass  # the audit log is the only record on one machine

    def close(self) -> None:
        self.database.close()


class SqliteJournal:
    """The installation journal in ``state.db`` and ``audit.jsonl``; one writer at a time through ``<home>/lock``."""

    def __init__(self, database: Database, *, home: Path, partners: PartnerStore) -> None:
        self.database = database
        self.home = home
        self.log = AuditFile(home / "audit.jsonl")
        self._partners = partners
        self._same_database = isinstance(partners, SqlitePartners) and partners.database is database
        self._pruned_at = 0.0

    # --- the audit chain --------------------------------------------------------------------------

    def audit_head(self) -> AuditHead:
        row = self.database.one("SELECT seq, hash, offset, outbox_cursor FROM audit_head WHERE id = 1")
        return AuditHead(*row) if row else AuditHead()

    def record(
        self, events: list[AuditEvent], records: list[PartnerRecord], *, now: datetime, outbox_cursor: int | None
    ) -> AuditHead:
        head = self.audit_head()
        entries, new_head = chain(head, events, now=now)
        if entries:
            new_head = dataclasses.replace(new_head, offset=self.log.append(head.offset, entries))
        if outbox_cursor is not None:
            new_head = dataclasses.replace(new_head, outbox_cursor=outbox_cursor)
        moved = new_head != head
        if self._same_database:
            assert isinstance(self._partners, SqlitePartners)
            if moved or records:
                with self.database.transaction():
                    self._partners.write(records)
                    if moved:
                        self._write_head(new_head)
        else:
            if moved:  # first: a crash before the records repeats an audit entry, never loses one
                with self.database.transaction():
                    self._write_head(new_head)
            self._partners.save(records)
        return new_head

    def _write_head(self, head: AuditHead) -> None:
        self.database.execute(
            "INSERT OR REPLACE INTO audit_head (id, seq, hash, offset, outbox_cursor) VALUES (1, ?, ?, ?, ?)",
            (head.seq, head.hash, head.offset, head.outbox_cursor),
        )

    def recover(self) -> None:
        self.log.recover(self.audit_head())

    def audit_entries(self, after: int = 0) -> Iterator[Any]:
        return self.log.entries(after)

    def exclusive(self, *, timeout: float | None = None) -> AbstractContextManager[None]:
        return installation_lock(self.home, timeout=timeout)

    # --- settings and memo ------------------------------------------------------------------------

    def setting(self, name: str) -> Any:
        return self.cached([f"setting|{name}"]).get(f"setting|{name}")

    def put_setting(self, name: str, value: Any) -> None:
        self.cache({f"setting|{name}": value})

    def cached(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.database.rows(f"SELECT key, value FROM memo WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def cache(self, entries: dict[str, Any]) -> None:
        if entries:
            with self.database.transaction():
                self.database.executemany(
                    "INSERT OR REPLACE INTO memo (key, value) VALUES (?, ?)",
                    [(key, json.dumps(value)) for key, value in entries.items()],
                )

    # --- the webhook outbox -----------------------------------------------------------------------

    def enqueue(self, event: StoredEvent, deliveries: list[DeliveryRow]) -> None:
        with self.database.transaction():
            self.database.execute(
                "INSERT INTO events (id, type, data, received_at) VALUES (?, ?, ?, ?)",
                (event.id, event.type, json.dumps(event.data, sort_keys=True), event.received_at),
            )
            self.database.executemany(
                "INSERT INTO deliveries (event_id, partner, webhook, message_id, status, attempts, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                [(event.id, d.partner, d.webhook, d.message_id, str(d.status), d.next_attempt_at) for d in deliveries],
            )

    def due(self, now: float, limit: int, *, lease: float = 0.0, replaying: bool = False) -> list[DeliveryRow]:
        query = (f"SELECT {_DELIVERY} FROM deliveries WHERE status = ? AND next_attempt_at <= ? "
                 "ORDER BY next_attempt_at, id LIMIT ?")  # fmt: skip
        status = DeliveryStatus.REPLAYING if replaying else DeliveryStatus.PENDING
        if lease <= 0:
            return [_delivery(row) for row in self.database.rows(query, (str(status), now, limit))]
        with self.database.transaction():  # BEGIN IMMEDIATE: a second dispatcher waits, then sees the claim
            rows = self.database.rows(query, (str(status), now, limit))
            self.database.executemany("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                                      [(now + lease, row[0]) for row in rows])  # fmt: skip
        return [_delivery(row) for row in rows]

    def events(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        unique = sorted(set(event_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, type, data, received_at FROM events WHERE id IN ({marks})"
            for row in self.database.rows(query, chunk):
                found[row[0]] = StoredEvent(row[0], row[1], json.loads(row[2]), row[3])
        return found

    def deliveries(self, event_id: str | None = None) -> list[DeliveryRow]:
        if event_id is None:
            rows = self.database.rows(f"SELECT {_DELIVERY} FROM deliveries ORDER BY id")
        else:
            rows = self.database.rows(f"SELECT {_DELIVERY} FROM deliveries WHERE event_id = ? ORDER BY id", (event_id,))
        return [_delivery(row) for row in rows]

    def record_attempts(self, rows: list[DeliveryRow]) -> None:
        with self.database.transaction():
            self.database.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ? "
                "WHERE id = ?",
                [(str(r.status), r.attempts, r.next_attempt_at, r.last_status, r.last_error, r.id) for r in rows],
            )

    def hold(self, partner: str, webhook: str) -> None:
        with self.database.transaction():
            self.database.execute(
                "UPDATE deliveries SET status = 'held' WHERE partner = ? AND webhook = ? "
                "AND status IN ('pending', 'replaying')",
                (partner, webhook),
            )

    def release_held(self, partner: str, webhook: str, *, now: float) -> int:
        with self.database.transaction():
            cursor = self.database.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ? "
                "WHERE partner = ? AND webhook = ? AND status = 'held'",
                (now, partner, webhook),
            )
        return cursor.rowcount

    def replay(
        self, partner: str, *, webhook: str | None, since: str, until: str, statuses: tuple[str, ...], now: float
    ) -> int:
        marks = ",".join("?" * len(statuses))
        query = ("UPDATE deliveries SET status = 'replaying', attempts = 0, next_attempt_at = ?, last_status = NULL, "
                 f"last_error = NULL WHERE partner = ? AND status IN ({marks}) "
                 "AND event_id IN (SELECT id FROM events WHERE received_at >= ? AND received_at < ?)")  # fmt: skip
        parameters: list[Any] = [now, partner, *statuses, since, until]
        if webhook is not None:
            query += " AND webhook = ?"
            parameters.append(webhook)
        with self.database.transaction():
            return self.database.execute(query, parameters).rowcount

    # --- what gateway processes share ---------------------------------------------------------------

    def take(self, key: str, *, count: int, rate: float, burst: float, now: float) -> Bucket:
        with self.database.transaction():  # BEGIN IMMEDIATE: another process's take waits for this one
            row = self.database.one("SELECT tokens, updated_at FROM rate_limits WHERE key = ?", (key,))
            tokens, updated_at = _refilled(row, rate=rate, burst=burst, now=now)
            taken = max(0, min(count, int(tokens)))
            self.database.execute("INSERT OR REPLACE INTO rate_limits (key, tokens, updated_at) VALUES (?, ?, ?)",
                                  (key, tokens - taken, updated_at))  # fmt: skip
        return Bucket(taken, tokens - taken)

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        row = self.database.one("SELECT tokens, updated_at FROM rate_limits WHERE key = ?", (key,))
        return _refilled(row, rate=rate, burst=burst, now=now)[0]

    def remember_once(self, key: str, expires_at: float) -> bool:
        now = clock.now().timestamp()
        self._prune(now)
        with self.database.transaction():
            cursor = self.database.execute(
                "INSERT INTO remembered_keys (key, expires_at) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET expires_at = excluded.expires_at WHERE remembered_keys.expires_at <= ?",
                (key, expires_at, now),
            )
        return cursor.rowcount == 1

    def revoke_token(self, jti: str, expires_at: float) -> bool:
        self._prune(clock.now().timestamp())
        with self.database.transaction():
            cursor = self.database.execute("INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?, ?)",
                                           (jti, expires_at))  # fmt: skip
        return cursor.rowcount == 1

    def revoked_tokens(self, now: float) -> dict[str, float]:
        return dict(self.database.rows("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > ?", (now,)))

    def revocations_version(self) -> str | None:
        try:
            inode = self.database.path.stat().st_ino
        except FileNotFoundError:
            inode = 0
        return f"{inode}:{self.database.one('SELECT version FROM revocation_changes WHERE id = 1')[0]}"

    def _prune(self, now: float) -> None:
        """Forget expired keys and revocations, at most once every PRUNE_SECONDS (a revoked token that has
        expired is refused as expired anyway)."""
        if now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        with self.database.transaction():
            self.database.execute("DELETE FROM remembered_keys WHERE expires_at <= ?", (now,))
            self.database.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (now,))

    # --- scope usage (counters the gateways add to in batches) ----------------------------------------

    def count_uses(self, uses: dict[tuple[str, str, str], int], last: dict[tuple[str, str], str]) -> None:
        counts = sorted((partner, scope, day, n) for (partner, scope, day), n in uses.items() if n > 0)
        moments = sorted((partner, scope, _utc(moment)) for (partner, scope), moment in last.items())
        if not counts and not moments:
            return
        with self.database.transaction():  # BEGIN IMMEDIATE: another gateway's batch waits, then adds to this one
            self.database.executemany(
                "INSERT INTO scope_usage (partner, scope, day, uses) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (partner, scope, day) DO UPDATE SET uses = scope_usage.uses + excluded.uses",
                counts,
            )
            self.database.executemany(
                "INSERT INTO scope_last_use (partner, scope, last_used) VALUES (?, ?, ?) ON CONFLICT (partner, scope) "
                "DO UPDATE SET last_used = max(scope_last_use.last_used, excluded.last_used)",
                moments,
            )

    def scope_usage(self, partners: list[str] | None = None) -> dict[str, dict[str, ScopeUse]]:
        since = (clock.now() - timedelta(days=USAGE_DAYS)).date().isoformat()
        if partners is None:
            moments = self.database.rows("SELECT partner, scope, last_used FROM scope_last_use")
            counts = self.database.rows("SELECT partner, scope, day, uses FROM scope_usage WHERE day >= ?", (since,))
        else:
            moments, counts = [], []
            unique = sorted(set(partners))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                moments += self.database.rows(
                    f"SELECT partner, scope, last_used FROM scope_last_use WHERE partner IN ({marks})", chunk
                )
                counts += self.database.rows(
                    f"SELECT partner, scope, day, uses FROM scope_usage WHERE day >= ? AND partner IN ({marks})",
                    [since, *chunk],
                )
        return _usage(moments, counts)

    def prune_usage(self, before_day: str) -> int:
        with self.database.transaction():
            return self.database.execute("DELETE FROM scope_usage WHERE day < ?", (before_day,)).rowcount

    # --- the delivery log -------------------------------------------------------------------------

    def log_attempts(self, attempts: list[DeliveryAttempt]) -> None:
        if attempts:
            with self.database.transaction():
                self.database.executemany(
                    f"INSERT INTO delivery_attempts ({_ATTEMPT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_attempt_row(attempt) for attempt in attempts],
                )

    def attempts(
        self, partner: str, *, webhook: str | None = None, status: str | None = None, since: str | None = None,
        limit: int = 1000,
    ) -> list[DeliveryAttempt]:
        query, parameters = f"SELECT {_ATTEMPT} FROM delivery_attempts WHERE partner = ?", [partner]
        for column, value in (("webhook", webhook), ("status", status)):
            if value is not None:
                query += f" AND {column} = ?"
                parameters.append(value)
        if since is not None:
            query += " AND attempted_at >= ?"
            parameters.append(since)
        rows = self.database.rows(query + " ORDER BY attempted_at DESC, id DESC LIMIT ?", [*parameters, limit])
        return [DeliveryAttempt(*row) for row in rows]

    def prune_attempts(self, before: str) -> int:
        with self.database.transaction():
            return self.database.execute("DELETE FROM delivery_attempts WHERE attempted_at < ?", (before,)).rowcount

    def attempt_counts(self, since: str) -> dict[tuple[str, str], dict[str, int]]:
        counts: dict[tuple[str, str], dict[str, int]] = {}
        query = ("SELECT partner, webhook, status, COUNT(*) FROM delivery_attempts WHERE attempted_at >= ? "
                 "GROUP BY partner, webhook, status")  # fmt: skip
        for partner, webhook, status, count in self.database.rows(query, (since,)):
            counts.setdefault((partner, webhook), {})[status] = int(count)
        return counts

    def attempt_days(self, partner: str, since: str) -> dict[tuple[str, str, str], int]:
        query = ("SELECT webhook, substr(attempted_at, 1, 10), status, COUNT(*) FROM delivery_attempts "
                 "WHERE partner = ? AND attempted_at >= ? GROUP BY 1, 2, 3")  # fmt: skip
        return {(webhook, day, status): int(count)
                for webhook, day, status, count in self.database.rows(query, (partner, since))}  # fmt: skip

    def close(self) -> None:
        self.database.close()


def _refilled(row: Any, *, rate: float, burst: float, now: float) -> tuple[float, float]:
    """A bucket's tokens at ``now`` and the time they are counted from: full when never used; a clock
    behind the last update refills nothing."""
    if row is None:
        return float(burst), now
    tokens, updated_at = float(row[0]), float(row[1])
    moment = max(now, updated_at)
    return min(float(burst), tokens + (moment - updated_at) * rate), moment


def _utc(moment: str) -> str:
    """An ISO 8601 time as one fixed form in UTC, so that later times also compare greater as text."""
    parsed = datetime.fromisoformat(moment)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def _usage(moments: list[Any], counts: list[Any]) -> dict[str, dict[str, ScopeUse]]:
    """Rows of last uses (partner, scope, time) and day counts (partner, scope, day, uses) as records."""
    days: dict[tuple[str, str], dict[str, int]] = {}
    for partner, scope, day, uses in counts:
        days.setdefault((partner, scope), {})[day] = int(uses)
    last: dict[tuple[str, str], str | None] = {(partner, scope): moment for partner, scope, moment in moments}
    found: dict[str, dict[str, ScopeUse]] = {}
    for key in sorted(last.keys() | days.keys()):
        found.setdefault(key[0], {})[key[1]] = ScopeUse(last.get(key), dict(sorted(days.get(key, {}).items())))
    return found


def _record(key: str, data: str) -> PartnerRecord:
    try:
        return PartnerRecord.from_json(json.loads(data))
    except (ValueError, TypeError, KeyError) as error:
        raise IntegrityError(
            f"the live record of {key} in state.db is damaged ({type(error).__name__}); restore state.db from a "
            "backup, or delete that row to have the next apply register the partner again"
        ) from error


def _delivery(row: Any) -> DeliveryRow:
    id_, event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error = row
    return DeliveryRow(id_, event_id, partner, webhook, message_id, DeliveryStatus(status), attempts, next_attempt_at,
                       last_status, last_error)  # fmt: skip


def _attempt_row(attempt: DeliveryAttempt) -> tuple[Any, ...]:
    return (attempt.message_id, attempt.partner, attempt.webhook, attempt.event_type, attempt.attempt, attempt.time,
            attempt.status, attempt.http_status, attempt.error, attempt.latency_ms)  # fmt: skip
