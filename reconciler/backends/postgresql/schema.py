"""The database schema as numbered migrations: ``partnerctl db migrate`` applies them, every start checks them.

Each migration runs in one transaction under a transaction-level advisory lock, so two processes
migrating at once are safe: the second waits, then finds nothing left to do. A process refuses a
schema newer than it knows (an older partnerctl must not write a newer layout) and asks for
``db migrate`` when the schema is older.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.backends.postgresql.database import Database
from reconciler.errors import Stalled

__all__ = ["LATEST", "MIGRATIONS", "Migration", "check", "current_version", "migrate"]

# Keys of pg_advisory_lock: two int4s, the first naming partnerctl.
LOCK_SPACE = 0x5C7E
MIGRATION_LOCK = 1


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: str


MIGRATIONS = (
    Migration(
        1,
        "partner records, audit chain, memo and webhook outbox",
        """
CREATE TABLE partners (key text PRIMARY KEY, data jsonb NOT NULL);
CREATE TABLE changes (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO changes (id, version) VALUES (1, 0);
-- Every change of a partner record, by partnerctl or by hand with psql, moves the counter and tells
-- the listening replicas (gateways) at commit.
CREATE FUNCTION partnerctl_partners_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    UPDATE changes SET version = version + 1 WHERE id = 1 RETURNING version INTO moved;
    PERFORM pg_notify('partnerctl_changes', moved::text);
    RETURN NULL;
END $$;
CREATE TRIGGER partners_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON partners
    FOR EACH STATEMENT EXECUTE FUNCTION partnerctl_partners_changed();

-- The chain itself: each entry exactly as hashed (text, so verification sees what was written).
CREATE TABLE audit_log (seq bigint PRIMARY KEY, entry text NOT NULL);
CREATE TABLE audit_head (
    id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL, outbox_cursor bigint NOT NULL
);
INSERT INTO audit_head (id, seq, hash, outbox_cursor) VALUES (1, 0, repeat('0', 64), 0);

CREATE TABLE memo (key text PRIMARY KEY, value jsonb NOT NULL);

CREATE TABLE events (id text PRIMARY KEY, type text NOT NULL, data jsonb NOT NULL, received_at text NOT NULL);
CREATE TABLE deliveries (
    id bigserial PRIMARY KEY, event_id text NOT NULL REFERENCES events (id), partner text NOT NULL,
    webhook text NOT NULL, message_id text NOT NULL UNIQUE, status text NOT NULL,
    attempts int NOT NULL DEFAULT 0, next_attempt_at double precision NOT NULL,
    last_status int, last_error text
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (partner, webhook, status);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
""",
    ),
    Migration(
        2,
        "delivery log, revoked tokens, rate-limit and scope-usage counters",
        """
-- Every delivery attempt for 30 days (DESIGN §8): ids, type, outcome, latency; never a payload.
CREATE TABLE delivery_attempts (
    id bigserial PRIMARY KEY, message_id text NOT NULL, partner text NOT NULL, webhook text NOT NULL,
    event_type text NOT NULL, attempt int NOT NULL, attempted_at timestamptz NOT NULL, status text NOT NULL,
    http_status int, error text, latency_ms int
);
CREATE INDEX delivery_attempts_by_webhook ON delivery_attempts (partner, webhook, attempted_at);
CREATE INDEX delivery_attempts_by_time ON delivery_attempts (attempted_at);
-- Access tokens revoked before they expire (RFC 7009), kept until then.
CREATE TABLE revoked_tokens (jti text PRIMARY KEY, expires_at timestamptz NOT NULL);
-- Token buckets shared by gateway replicas, per partner and limit.
CREATE TABLE rate_limits (key text PRIMARY KEY, tokens double precision NOT NULL, updated_at double precision NOT NULL);
-- Uses per partner, scope and day, with the last use (DESIGN §12): counters, never a request log.
CREATE TABLE scope_usage (
    partner text NOT NULL, scope text NOT NULL, day date NOT NULL, uses bigint NOT NULL,
    last_used timestamptz NOT NULL, PRIMARY KEY (partner, scope, day)
);
""",
    ),
    Migration(
        3,
        "revocations heard by every gateway at once, keys seen once",
        """
-- Every revocation moves a counter and tells the listening gateways at commit, on a channel of its own
-- (a revocation changes no partner record: their caches stay).
CREATE TABLE revocation_changes (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO revocation_changes (id, version) VALUES (1, 0);
CREATE FUNCTION partnerctl_tokens_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    UPDATE revocation_changes SET version = version + 1 WHERE id = 1 RETURNING version INTO moved;
    PERFORM pg_notify('partnerctl_revocations', moved::text);
    RETURN NULL;
END $$;
CREATE TRIGGER tokens_revoked AFTER INSERT OR UPDATE ON revoked_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION partnerctl_tokens_revoked();
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
-- Keys that may be seen only once (private_key_jwt assertion ids), kept until they expire.
CREATE TABLE remembered_keys (key text PRIMARY KEY, expires_at double precision NOT NULL);
CREATE INDEX remembered_keys_by_expiry ON remembered_keys (expires_at);
""",
    ),
    Migration(
        4,
        "webhook replay: a lane of its own, found by the time its events were received",
        """
-- Replayed deliveries wait in their own lane (status 'replaying'), claimed after the live ones.
CREATE INDEX deliveries_replay_due ON deliveries (next_attempt_at, id) WHERE status = 'replaying';
CREATE INDEX events_by_time ON events (received_at);
""",
    ),
    Migration(
        5,
        "scope usage: uses per day, and the last use in a table of its own",
        """
-- Gateways add their batches with INSERT … ON CONFLICT: uses += n per (partner, scope, day), and the last
-- use per (partner, scope) moved only forward (GREATEST). Counters, never a request log (DESIGN §12).
CREATE TABLE scope_last_use (
    partner text NOT NULL, scope text NOT NULL, last_used timestamptz NOT NULL, PRIMARY KEY (partner, scope)
);
INSERT INTO scope_last_use (partner, scope, last_used)
    SELECT partner, scope, max(last_used) FROM scope_usage GROUP BY partner, scope;
ALTER TABLE scope_usage DROP COLUMN last_used;
CREATE INDEX scope_usage_by_day ON scope_usage (day);
""",
    ),
)
LATEST = MIGRATIONS[-1].version

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS partnerctl_schema (
    version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def current_version(database: Database) -> int:
    """The newest migration applied; 0 for an empty database."""
    with database.connect() as conn, database.errors():  # its own connection: an unreachable server fails fast
        row = conn.execute("SELECT to_regclass('partnerctl_schema') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM partnerctl_schema").fetchone()
        return int(found[0]) if found else 0


def migrate(database: Database) -> list[Migration]:
    """Apply the migrations not yet applied, in order; the ones applied now."""
    applied: list[Migration] = []
    with database.connect() as conn, database.errors(), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, MIGRATION_LOCK))
        conn.execute(_BOOKKEEPING)
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM partnerctl_schema").fetchone()
        have = int(row[0]) if row else 0
        if have > LATEST:
            raise Stalled(_too_new(database, have))
        for migration in MIGRATIONS:
            if migration.version > have:
                conn.execute(migration.statements.encode())
                conn.execute("INSERT INTO partnerctl_schema (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))  # fmt: skip
                applied.append(migration)
    return applied


def check(database: Database) -> None:
    """Refuse a schema this partnerctl cannot use, saying what to do."""
    have = current_version(database)
    if have > LATEST:
        raise Stalled(_too_new(database, have))
    if have < LATEST:
        state = (
            "has no partnerctl schema yet"
            if have == 0
            else f"has schema version {have}, this partnerctl needs {LATEST}"
        )
        raise Stalled(f"PostgreSQL at {database.name} {state}: run `partnerctl --state URL db migrate` first")


def _too_new(database: Database, have: int) -> str:
    return (f"PostgreSQL at {database.name} has schema version {have}, newer than this partnerctl knows ({LATEST}): "
            "upgrade partnerctl; an older release must not write a newer schema")  # fmt: skip
