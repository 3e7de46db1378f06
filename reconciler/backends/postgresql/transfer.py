"""``partnerctl state migrate``: an embedded (SQLite) installation moved into PostgreSQL, re-issuing nothing.

Partner records, the audit chain (verified before and after, head included), the plan memo and
settings, and the webhook outbox (events and deliveries, with their status and attempts) are copied
in one PostgreSQL transaction: either all of it lands or none. The target must be empty. Secrets
stay where they are (the local store under ``--home``, or Vault); nothing is re-issued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners
from reconciler.backends.sqlite.state import SqliteJournal, SqlitePartners
from reconciler.errors import IntegrityError, InvalidState
from reconciler.stores.audit import canonical, verify

__all__ = ["Transfer", "transfer"]


@dataclass(frozen=True)
class Transfer:
    partners: int
    audit_entries: int
    audit_head_seq: int
    memo_entries: int
    events: int
    deliveries: int


def transfer(
    source: tuple[SqlitePartners, SqliteJournal], target: tuple[PostgresPartners, PostgresJournal]
) -> Transfer:
    """Copy ``source`` into the empty ``target``; IntegrityError when either chain does not verify."""
    records, journal = source
    target_records, target_journal = target
    head = journal.audit_head()
    entries = list(journal.audit_entries())
    verdict = verify(entries, head)
    if not verdict.intact:
        raise IntegrityError(f"the embedded audit log does not verify (seq {verdict.first_broken_seq}: "
                             f"{verdict.problem}); nothing was moved. See `partnerctl audit verify`")  # fmt: skip
    database = target_journal.database
    if target_records.partners() or target_journal.audit_head().seq:
        raise InvalidState(f"PostgreSQL at {database.name} already holds an installation; migrate into an empty "
                           "database (after `partnerctl db migrate`)")  # fmt: skip
    partners = records.partners()
    memo = journal.database.rows("SELECT key, value FROM memo ORDER BY key")
    events = journal.database.rows("SELECT id, type, data, received_at FROM events ORDER BY id")
    deliveries = journal.database.rows(
        "SELECT event_id, partner, webhook, message_id, status, attempts, next_attempt_at, last_status, last_error "
        "FROM deliveries ORDER BY id"
    )
    with database.transaction() as conn, conn.cursor() as cursor:
        target_records.write(conn, list(partners.values()))
        cursor.executemany("INSERT INTO audit_log (seq, entry) VALUES (%s, %s)",
                           [(entry["seq"], canonical(entry)) for entry in entries])  # fmt: skip
        cursor.execute("UPDATE audit_head SET seq = %s, hash = %s, outbox_cursor = %s WHERE id = 1",
                       (head.seq, head.hash, head.outbox_cursor))  # fmt: skip
        cursor.executemany("INSERT INTO memo (key, value) VALUES (%s, %s)",
                           [(key, Jsonb(json.loads(value))) for key, value in memo])  # fmt: skip
        cursor.executemany(
            "INSERT INTO events (id, type, data, received_at) VALUES (%s, %s, %s, %s)",
            [(id_, type_, Jsonb(json.loads(data)), received) for id_, type_, data, received in events],
        )
        cursor.executemany(
            "INSERT INTO deliveries (event_id, partner, webhook, message_id, status, attempts, next_attempt_at, "
            "last_status, last_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [tuple(row) for row in deliveries],
        )
    moved = verify(target_journal.audit_entries(), target_journal.audit_head())
    if not moved.intact or moved.entries != len(entries):
        raise IntegrityError(f"the audit chain in PostgreSQL at {database.name} does not verify after the move "
                             f"({moved.problem}); keep using the embedded installation and report this")  # fmt: skip
    return Transfer(len(partners), len(entries), head.seq, len(memo), len(events), len(deliveries))
