"""Partner records and the installation journal in PostgreSQL, for any number of processes at once.

- A record and the audit entries that explain it commit in one transaction. Appends to the chain
  are serialised by a row lock on its head, so several writers (the reconciler, gateways,
  dispatcher workers) make one unbroken chain; the entries live in ``audit_log``.
- :meth:`PostgresJournal.exclusive` (one writer's read-change-record) is a session advisory lock.
- :meth:`PostgresJournal.due` *claims* what it returns (``FOR UPDATE SKIP LOCKED``, then the row's
  next attempt is pushed past a lease), so each delivery goes to one worker; one that dies
  mid-delivery leaves it to another once the lease runs out.
- :meth:`PostgresPartners.version` comes from the change counter, or, in long-running processes,
  from :class:`~reconciler.backends.postgresql.changes.ChangeListener` without a round trip;
  :meth:`PostgresJournal.revocations_version` likewise, from the revocations' counter and channel.
- Gateway replicas share rate-limit buckets: a take is one atomic ``UPDATE … RETURNING`` on the
  bucket's row (its row lock orders concurrent takes), which also notifies ``partnerctl_buckets``; a
  listening process then knows a bucket nobody took from for a whole refill is full, and
  :meth:`PostgresJournal.level` answers without a round trip. Keys seen once are one ``INSERT … ON CONFLICT``.
- Scope-usage batches from any number of gateways add up: ``uses = uses + EXCLUDED.uses`` and
  ``last_used = GREATEST(…)`` upserts, in key order (concurrent batches lock rows in the same order).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from reconciler import clock
from reconciler.backends.postgresql.changes import BUCKETS, REVOCATIONS, ChangeListener
from reconciler.backends.postgresql.database import Database
from reconciler.backends.postgresql.schema import LOCK_SPACE
from reconciler.errors import Busy, IntegrityError
from reconciler.stores.audit import canonical, chain
from reconciler.stores.journal import USAGE_DAYS, Bucket
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

__all__ = ["CLAIM_SECONDS", "PostgresJournal", "PostgresPartners"]

WRITER_LOCK = 2
# A claimed delivery is another worker's to send again after this long without a recorded outcome,
# unless the caller says how long its pass may take.
CLAIM_SECONDS = 120.0
_DELIVERY = "id, event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error"
_UPSERT = "INSERT INTO partners (key, data) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data"
# Expired keys seen once and revoked tokens past their expiry are deleted at most this often per process.
PRUNE_SECONDS = 60.0
# One statement per take: the bucket refilled to now (capped at burst), then up to %(count)s whole tokens
# taken. The subquery locks the row, so a concurrent take waits and then sees this one's result.
_TAKE = """
UPDATE rate_limits AS bucket
SET tokens = now_.tokens - LEAST(%(count)s, floor(now_.tokens)), updated_at = now_.at
FROM (SELECT key, LEAST(%(burst)s, tokens + GREATEST(%(now)s - updated_at, 0) * %(rate)s) AS tokens,
             GREATEST(%(now)s, updated_at) AS at
      FROM rate_limits WHERE key = %(key)s FOR UPDATE) AS now_
WHERE bucket.key = now_.key
RETURNING LEAST(%(count)s, floor(now_.tokens))::int, bucket.tokens, pg_notify(%(channel)s, bucket.key) IS NULL
"""


class PostgresPartners:
    """Partner records, one row each (``data`` is the record's JSON)."""

    def __init__(self, database: Database, *, listener: ChangeListener | None = None) -> None:
        self.database = database
        self.listener = listener

    def version(self) -> str | None:
        if self.listener is not None:
            heard = self.listener.version()
            if heard is not None:
                return heard
        row = self.database.one("SELECT version FROM changes WHERE id = 1")
        return f"db:{row[0]}"

    def partners(self) -> dict[str, PartnerRecord]:
        rows = self.database.rows("SELECT key, data FROM partners")
        return {key: _record(key, data) for key, data in rows}

    def partner(self, key: str) -> PartnerRecord | None:
        row = self.database.one("SELECT data FROM partners WHERE key = %s", (key,))
        return _record(key, row[0]) if row else None

    def save(self, records: list[PartnerRecord]) -> None:
        if records:
            with self.database.transaction() as conn:
                self.write(conn, records)

    def write(self, conn: psycopg.Connection[Any], records: list[PartnerRecord]) -> None:
        """Write inside the caller's transaction."""
        with conn.cursor() as cursor:
            cursor.executemany(_UPSERT, [(record.key, Jsonb(record.to_json())) for record in records])

    def announce(self, entries: list[AuditEvent]) -> None:
        pass  # the audit log is the record; mirror.py adds Kubernetes Events where wanted

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.database.close()


class PostgresJournal:
    """The journal in the same database as the records (``partners`` may also be a mirror around them)."""

    def __init__(
        self,
        database: Database,
        *,
        partners: PostgresPartners,
        after_commit: Callable[[list[PartnerRecord]], None] | None = None,
    ) -> None:
        self.database = database
        self._partners = partners
        self._after_commit = after_commit  # the Kubernetes mirror, when there is one
        self._held = threading.local()  # this thread's connection holding the writer lock, inside exclusive()
        self._pruned_at = 0.0

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction; inside :meth:`exclusive`, on the connection that holds the writer lock, so that a
        writer whose lock went with its connection writes nothing more."""
        held: psycopg.Connection[Any] | None = getattr(self._held, "conn", None)
        if held is None:
            with self.database.transaction() as conn:
                yield conn
        else:
            with self.database.errors(), held.transaction():
                yield held

    # --- the audit chain --------------------------------------------------------------------------

    def audit_head(self) -> AuditHead:
        row = self.database.one("SELECT seq, hash, outbox_cursor FROM audit_head WHERE id = 1")
        return AuditHead(seq=row[0], hash=row[1], outbox_cursor=row[2]) if row else AuditHead()

    def record(
        self, events: list[AuditEvent], records: list[PartnerRecord], *, now: datetime, outbox_cursor: int | None
    ) -> AuditHead:
        with self._writing() as conn:
            # The head's row lock serialises appends across processes: one chain, never a fork.
            row = conn.execute("SELECT seq, hash, outbox_cursor FROM audit_head WHERE id = 1 FOR UPDATE").fetchone()
            head = AuditHead(seq=row[0], hash=row[1], outbox_cursor=row[2]) if row else AuditHead()
            entries, new_head = chain(head, events, now=now)
            if outbox_cursor is not None and outbox_cursor > head.outbox_cursor:
                new_head = AuditHead(seq=new_head.seq, hash=new_head.hash, outbox_cursor=outbox_cursor)
            with conn.cursor() as cursor:
                if entries:
                    cursor.executemany("INSERT INTO audit_log (seq, entry) VALUES (%s, %s)",
                                       [(entry["seq"], canonical(entry)) for entry in entries])  # fmt: skip
                if new_head != head:
                    cursor.execute("UPDATE audit_head SET seq = %s, hash = %s, outbox_cursor = %s WHERE id = 1",
                                   (new_head.seq, new_head.hash, new_head.outbox_cursor))  # fmt: skip
            if records:
                self._partners.write(conn, records)
        if records and self._after_commit is not None:
            self._after_commit(records)
        return new_head

    def recover(self) -> None:
        pass  # entries and head commit together: a crashed writer leaves nothing behind

    def audit_entries(self, after: int = 0) -> Iterator[Any]:
        """The chain in pages of 5,000 (an export of millions never holds them all)."""
        while True:
            rows = self.database.rows("SELECT seq, entry FROM audit_log WHERE seq > %s ORDER BY seq LIMIT 5000",
                                      (after,))  # fmt: skip
            for seq, text in rows:
                try:
                    yield json.loads(text)
                except ValueError:
                    yield text  # verification reports it
                after = seq
            if len(rows) < 5000:
                return

    @contextmanager
    def exclusive(self, *, timeout: float | None = None) -> Iterator[None]:
        """A session advisory lock on a connection of the pool, released (or dropped with it) after the block."""
        with self.database.connection() as conn:
            with self.database.errors():
                if timeout is None:
                    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, WRITER_LOCK))
                else:
                    deadline = time.monotonic() + timeout
                    while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, WRITER_LOCK)).fetchone()[
                        0
                    ]:  # type: ignore[index]
                        if time.monotonic() > deadline:
                            raise Busy(f"another partnerctl is writing to {self.database.name}; try again when "
                                       "it is done")  # fmt: skip
                        time.sleep(0.1)
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None
                if not conn.closed and not conn.broken:
                    with self.database.errors():
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, WRITER_LOCK))

    # --- settings and memo ------------------------------------------------------------------------

    def setting(self, name: str) -> Any:
        return self.cached([f"setting|{name}"]).get(f"setting|{name}")

    def put_setting(self, name: str, value: Any) -> None:
        self.cache({f"setting|{name}": value})

    def cached(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        rows = self.database.rows("SELECT key, value FROM memo WHERE key = ANY(%s)", (keys,))
        return dict(rows)

    def cache(self, entries: dict[str, Any]) -> None:
        if entries:
            with self._writing() as conn, conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO memo (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [(key, Jsonb(value)) for key, value in sorted(entries.items())],
                )

    # --- the webhook outbox -----------------------------------------------------------------------

    def enqueue(self, event: StoredEvent, deliveries: list[DeliveryRow]) -> None:
        with self._writing() as conn, conn.cursor() as cursor:
            cursor.execute("INSERT INTO events (id, type, data, received_at) VALUES (%s, %s, %s, %s)",
                           (event.id, event.type, Jsonb(event.data), event.received_at))  # fmt: skip
            cursor.executemany(
                "INSERT INTO deliveries (event_id, partner, webhook, message_id, status, attempts, next_attempt_at) "
                "VALUES (%s, %s, %s, %s, %s, 0, %s)",
                [(event.id, d.partner, d.webhook, d.message_id, str(d.status), d.next_attempt_at) for d in deliveries],
            )

    def due(self, now: float, limit: int, *, lease: float = 0.0, replaying: bool = False) -> list[DeliveryRow]:
        """Claim up to ``limit`` due deliveries for this worker: no other worker sees them for ``lease``
        seconds (at least CLAIM_SECONDS) unless their outcome is recorded first."""
        rows = self.database.rows(
            f"""WITH claimed AS (
                    SELECT id FROM deliveries WHERE status = %(status)s AND next_attempt_at <= %(now)s
                    ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                UPDATE deliveries AS d SET next_attempt_at = %(until)s FROM claimed WHERE d.id = claimed.id
                RETURNING {", ".join("d." + column.strip() for column in _DELIVERY.split(","))}""",
            {"now": now, "limit": limit, "until": now + max(lease, CLAIM_SECONDS),
             "status": str(DeliveryStatus.REPLAYING if replaying else DeliveryStatus.PENDING)},
        )
        return sorted((_delivery(row) for row in rows), key=lambda row: row.id)

    def events(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        unique = sorted(set(event_ids))
        if not unique:
            return {}
        rows = self.database.rows("SELECT id, type, data, received_at FROM events WHERE id = ANY(%s)", (unique,))
        return {row[0]: StoredEvent(row[0], row[1], row[2], row[3]) for row in rows}

    def deliveries(self, event_id: str | None = None) -> list[DeliveryRow]:
        if event_id is None:
            rows = self.database.rows(f"SELECT {_DELIVERY} FROM deliveries ORDER BY id")
        else:
            rows = self.database.rows(f"SELECT {_DELIVERY} FROM deliveries WHERE event_id = %s ORDER BY id",
                                      (event_id,))  # fmt: skip
        return [_delivery(row) for row in rows]

    def record_attempts(self, rows: list[DeliveryRow]) -> None:
        if not rows:
            return
        with self._writing() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE deliveries SET status = %s, attempts = %s, next_attempt_at = %s, last_status = %s, "
                "last_error = %s WHERE id = %s",
                [(str(r.status), r.attempts, r.next_attempt_at, r.last_status, r.last_error, r.id) for r in rows],
            )

    def hold(self, partner: str, webhook: str) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE deliveries SET status = 'held' "
                         "WHERE partner = %s AND webhook = %s AND status IN ('pending', 'replaying')",
                         (partner, webhook))  # fmt: skip

    def release_held(self, partner: str, webhook: str, *, now: float) -> int:
        with self.database.connection() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = %s "
                "WHERE partner = %s AND webhook = %s AND status = 'held'",
                (now, partner, webhook),
            )
            return cursor.rowcount

    def replay(
        self, partner: str, *, webhook: str | None, since: str, until: str, statuses: tuple[str, ...], now: float
    ) -> int:
        query = ("UPDATE deliveries SET status = 'replaying', attempts = 0, next_attempt_at = %s, last_status = NULL, "
                 "last_error = NULL WHERE partner = %s AND status = ANY(%s) "
                 "AND event_id IN (SELECT id FROM events WHERE received_at >= %s AND received_at < %s)")  # fmt: skip
        parameters: list[Any] = [now, partner, list(statuses), since, until]
        if webhook is not None:
            query += " AND webhook = %s"
            parameters.append(webhook)
        with self.database.connection() as conn:
            return conn.execute(query, parameters).rowcount

    # --- what gateway replicas share ---------------------------------------------------------------

    def take(self, key: str, *, count: int, rate: float, burst: float, now: float) -> Bucket:
        values = {"key": key, "count": max(0, count), "rate": rate, "burst": burst, "now": now, "channel": BUCKETS}
        with self.database.connection() as conn:
            row = conn.execute(_TAKE, values).fetchone()
            if row is None:  # the bucket's first take: a full bucket, unless another process made it first
                conn.execute("INSERT INTO rate_limits (key, tokens, updated_at) VALUES (%s, %s, %s) "
                             "ON CONFLICT (key) DO NOTHING", (key, burst, now))  # fmt: skip
                row = conn.execute(_TAKE, values).fetchone()
        assert row is not None
        return Bucket(int(row[0]), float(row[1]))

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        listener = self._partners.listener
        quiet = listener.quiet_since(key) if listener is not None else None
        if quiet is not None and rate > 0 and now - quiet >= burst / rate:
            return float(burst)  # no take heard for a whole refill: full, without asking
        row = self.database.one("SELECT tokens, updated_at FROM rate_limits WHERE key = %s", (key,))
        if row is None:
            return float(burst)
        tokens, updated_at = float(row[0]), float(row[1])
        return min(float(burst), tokens + max(now - updated_at, 0.0) * rate)

    def remember_once(self, key: str, expires_at: float) -> bool:
        now = clock.now().timestamp()
        self._prune(now)
        row = self.database.one(
            "INSERT INTO remembered_keys (key, expires_at) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
            "SET expires_at = EXCLUDED.expires_at WHERE remembered_keys.expires_at <= %s RETURNING 1",
            (key, expires_at, now),
        )
        return row is not None

    def revoke_token(self, jti: str, expires_at: float) -> bool:
        self._prune(clock.now().timestamp())
        row = self.database.one("INSERT INTO revoked_tokens (jti, expires_at) VALUES (%s, to_timestamp(%s)) "
                                "ON CONFLICT (jti) DO NOTHING RETURNING 1", (jti, expires_at))  # fmt: skip
        return row is not None

    def revoked_tokens(self, now: float) -> dict[str, float]:
        rows = self.database.rows("SELECT jti, extract(epoch FROM expires_at)::float8 FROM revoked_tokens "
                                  "WHERE expires_at > to_timestamp(%s)", (now,))  # fmt: skip
        return {jti: float(expires_at) for jti, expires_at in rows}

    def revocations_version(self) -> str | None:
        listener = self._partners.listener
        if listener is not None:
            heard = listener.version(REVOCATIONS)
            if heard is not None:
                return heard
        row = self.database.one("SELECT version FROM revocation_changes WHERE id = 1")
        return f"db:{row[0]}"

    def _prune(self, now: float) -> None:
        """Forget expired keys and revocations, at most once every PRUNE_SECONDS per process (an expired
        token is refused as expired anyway)."""
        if now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        with self.database.connection() as conn:
            conn.execute("DELETE FROM remembered_keys WHERE expires_at <= %s", (now,))
            conn.execute("DELETE FROM revoked_tokens WHERE expires_at <= to_timestamp(%s)", (now,))

    # --- scope usage (counters the gateways add to in batches) ----------------------------------------

    def count_uses(self, uses: dict[tuple[str, str, str], int], last: dict[tuple[str, str], str]) -> None:
        counts = sorted((partner, scope, date.fromisoformat(day), n) for (partner, scope, day), n in uses.items()
                        if n > 0)  # fmt: skip
        moments = sorted((partner, scope, _moment(text)) for (partner, scope), text in last.items())
        if not counts and not moments:
            return
        with self._writing() as conn, conn.cursor() as cursor:
            if counts:
                cursor.executemany(
                    "INSERT INTO scope_usage (partner, scope, day, uses) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (partner, scope, day) DO UPDATE SET uses = scope_usage.uses + EXCLUDED.uses",
                    counts,
                )
            if moments:
                cursor.executemany(
                    "INSERT INTO scope_last_use (partner, scope, last_used) VALUES (%s, %s, %s) "
                    "ON CONFLICT (partner, scope) DO UPDATE "
                    "SET last_used = GREATEST(scope_last_use.last_used, EXCLUDED.last_used)",
                    moments,
                )

    def scope_usage(self, partners: list[str] | None = None) -> dict[str, dict[str, ScopeUse]]:
        since = (clock.now() - timedelta(days=USAGE_DAYS)).date()
        only, wanted = ("", []) if partners is None else (" AND partner = ANY(%s)", [sorted(set(partners))])
        with self.database.connection() as conn, conn.transaction():  # one snapshot for both
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            moments = conn.execute(f"SELECT partner, scope, last_used FROM scope_last_use WHERE true{only}",
                                   wanted).fetchall()  # fmt: skip
            counts = conn.execute(f"SELECT partner, scope, day, uses FROM scope_usage WHERE day >= %s{only}",
                                  [since, *wanted]).fetchall()  # fmt: skip
        found: dict[str, dict[str, ScopeUse]] = {}
        days: dict[tuple[str, str], dict[str, int]] = {}
        for partner, scope, day, count in counts:
            days.setdefault((partner, scope), {})[day.isoformat()] = int(count)
        last = {(partner, scope): _text(moment) for partner, scope, moment in moments}
        for key in sorted(last.keys() | days.keys()):
            found.setdefault(key[0], {})[key[1]] = ScopeUse(last.get(key), dict(sorted(days.get(key, {}).items())))
        return found

    def prune_usage(self, before_day: str) -> int:
        with self._writing() as conn:
            return conn.execute("DELETE FROM scope_usage WHERE day < %s", (date.fromisoformat(before_day),)).rowcount

    # --- the delivery log -------------------------------------------------------------------------

    def log_attempts(self, attempts: list[DeliveryAttempt]) -> None:
        if attempts:
            with self._writing() as conn, conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO delivery_attempts (message_id, partner, webhook, event_type, attempt, attempted_at, "
                    "status, http_status, error, latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(a.message_id, a.partner, a.webhook, a.event_type, a.attempt, datetime.fromisoformat(a.time),
                      a.status, a.http_status, a.error, a.latency_ms) for a in attempts],
                )  # fmt: skip

    def attempts(
        self, partner: str, *, webhook: str | None = None, status: str | None = None, since: str | None = None,
        limit: int = 1000,
    ) -> list[DeliveryAttempt]:
        query = ("SELECT message_id, partner, webhook, event_type, attempt, attempted_at, status, http_status, error, "
                 "latency_ms FROM delivery_attempts WHERE partner = %s")  # fmt: skip
        parameters: list[Any] = [partner]
        for column, value in (("webhook", webhook), ("status", status)):
            if value is not None:
                query += f" AND {column} = %s"
                parameters.append(value)
        if since is not None:
            query += " AND attempted_at >= %s"
            parameters.append(datetime.fromisoformat(since))
        rows = self.database.rows(query + " ORDER BY attempted_at DESC, id DESC LIMIT %s", [*parameters, limit])
        return [_attempt(row) for row in rows]

    def prune_attempts(self, before: str) -> int:
        with self._writing() as conn:
            return conn.execute("DELETE FROM delivery_attempts WHERE attempted_at < %s",
                                (datetime.fromisoformat(before),)).rowcount  # fmt: skip

    def attempt_counts(self, since: str) -> dict[tuple[str, str], dict[str, int]]:
        counts: dict[tuple[str, str], dict[str, int]] = {}
        query = ("SELECT partner, webhook, status, COUNT(*) FROM delivery_attempts WHERE attempted_at >= %s "
                 "GROUP BY partner, webhook, status")  # fmt: skip
        for partner, webhook, status, count in self.database.rows(query, (datetime.fromisoformat(since),)):
            counts.setdefault((partner, webhook), {})[status] = int(count)
        return counts

    def attempt_days(self, partner: str, since: str) -> dict[tuple[str, str, str], int]:
        query = ("SELECT webhook, to_char(attempted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), status, COUNT(*) "
                 "FROM delivery_attempts WHERE partner = %s AND attempted_at >= %s GROUP BY 1, 2, 3")  # fmt: skip
        rows = self.database.rows(query, (partner, datetime.fromisoformat(since)))
        return {(webhook, day, status): int(count) for webhook, day, status, count in rows}

    def close(self) -> None:
        self.database.close()


def _record(key: str, data: Any) -> PartnerRecord:
    try:
        return PartnerRecord.from_json(data)
    except (ValueError, TypeError, KeyError) as error:
        raise IntegrityError(
            f"the live record of {key} in PostgreSQL is damaged ({type(error).__name__}); restore the partners "
            "table from a backup, or delete that row to have the next apply register the partner again"
        ) from error


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(moment: datetime) -> str:
    """A last use as the SQLite store gives it: UTC, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _delivery(row: Any) -> DeliveryRow:
    id_, event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error = row
    return DeliveryRow(id_, event_id, partner, webhook, message_id, DeliveryStatus(status), attempts, next_attempt_at,
                       last_status, last_error)  # fmt: skip


def _attempt(row: Any) -> DeliveryAttempt:
    message_id, partner, webhook, event_type, attempt, at, status, http_status, error, latency_ms = row
    return DeliveryAttempt(message_id, partner, webhook, event_type, attempt, at.astimezone(UTC).isoformat(), status,
                           http_status, error, latency_ms)  # fmt: skip
