"""An installation on PostgreSQL (``--state postgresql://…``): the whole flow, the schema's versions, the
move from SQLite, and the database's URL and password kept out of every message."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from reconciler.backends.postgresql.database import Database
from reconciler.backends.postgresql.schema import LATEST, migrate
from tests.support.cli import partnerctl
from tests.support.engine import Installation
from tests.support.postgres import PostgresServer
from tests.support.repo import PARTNER, TENANT, edit

ACME = f"{TENANT}/acme-bank"


def test_an_installation_on_postgresql_onboards_suspends_and_resumes(postgres_installation: Installation) -> None:
    installation = postgres_installation
    installation.onboard()
    assert installation.actions() == [], "the second plan is empty"
    status = installation.status()[ACME]
    assert (status["phase"], status["credential"]["clientId"]) == ("AWAITING_HANDSHAKE", f"{TENANT}.acme-bank")
    secret = installation.deliver(ACME)["client_secret"]

    installation.repo.write_partner(edit(PARTNER, "suspended: false", "suspended: true"))
    installation.repo.commit("Suspend ACME")
    installation.apply()
    assert installation.status()[ACME]["phase"] == "SUSPENDED"
    assert installation.secrets().verify(f"{TENANT}.acme-bank", secret) is None
    assert installation.events(ACME)[:3] == ["credential.issued", "partner.registered", "approval.recorded"]
    assert "partner.suspended" in installation.events(ACME)

    verified = installation.run("--output", "json", "audit", "verify")
    assert verified.exit_code == 0 and verified.json()["intact"] is True
    assert verified.json()["entries"] == len(installation.audit())


def test_an_edited_audit_entry_is_found(postgres_installation: Installation, postgres_url: str) -> None:
    postgres_installation.onboard()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("UPDATE audit_log SET entry = replace(entry, 'acme-bank', 'evil-bank') WHERE seq = 2")
    verified = postgres_installation.run("--output", "json", "audit", "verify")
    assert verified.exit_code == 1 and verified.json()["firstBrokenSeq"] == 2


def test_audit_export_writes_json_lines_that_verify(postgres_installation: Installation, tmp_path: Path) -> None:
    postgres_installation.onboard()
    exported = tmp_path / "audit.jsonl"
    assert postgres_installation.run("audit", "export", "--out", str(exported)).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [entry["seq"] for entry in lines] == list(range(1, len(lines) + 1))
    checked = postgres_installation.run("--output", "json", "audit", "verify", "--file", str(exported))
    assert checked.exit_code == 0 and checked.json()["entries"] == len(lines)
    lines[1]["actor"] = "someone-else"
    exported.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    tampered = postgres_installation.run("--output", "json", "audit", "verify", "--file", str(exported))
    assert tampered.exit_code == 1 and tampered.json()["firstBrokenSeq"] == 2


def test_db_migrate_twice_at_once_applies_each_migration_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    outcomes: list[object] = []

    def run() -> None:
        database = Database(url, max_size=1)
        try:
            outcomes.append(migrate(database))
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(applied) for applied in outcomes) == [0, LATEST]  # type: ignore[arg-type]
    with psycopg.connect(url) as db:
        assert db.execute("SELECT version FROM partnerctl_schema ORDER BY version").fetchall() == [
            (version,) for version in range(1, LATEST + 1)
        ]
    again = partnerctl("--state", url, "--output", "json", "db", "migrate")
    assert again.exit_code == 0 and again.json() == {"database": _shown(url), "version": LATEST, "applied": []}


def test_a_database_without_the_schema_asks_for_db_migrate(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    result = partnerctl("--state", url, "status")
    assert result.exit_code == 1
    assert "db migrate" in result.stderr and "Traceback" not in result.stderr
    migrated = partnerctl("--state", url, "db", "migrate")
    assert migrated.exit_code == 0 and f"schema at version {LATEST}" in migrated.stdout
    assert partnerctl("--state", url, "status").exit_code == 0


def test_a_schema_newer_than_this_partnerctl_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO partnerctl_schema (version, name) VALUES (%s, 'from the future')", (LATEST + 1,))
    for command in (("status",), ("db", "migrate")):
        result = partnerctl("--state", postgres_url, *command)
        assert result.exit_code == 1 and "newer than this partnerctl knows" in result.stderr, result


def test_no_password_reaches_a_message() -> None:
    url = "postgresql://partnerctl:s3cr3t-Pa55@127.0.0.1:1/partners?sslmode=disable"
    for command in (("status",), ("db", "migrate"), ("state", "migrate", "--to", url)):
        result = partnerctl("--state", url, *command)
        assert result.exit_code in (1, 2) and "Traceback" not in result.stderr
        assert "s3cr3t-Pa55" not in result.stdout + result.stderr
    result = partnerctl("--state", url, "status")
    assert "postgresql://partnerctl@127.0.0.1:1/partners" in result.stderr and "unavailable" in result.stderr


def test_state_migrate_moves_an_embedded_installation_without_reissuing(
    installation: Installation, postgres_url: str
) -> None:
    installation.onboard()
    before = installation.status()[ACME]
    audit = installation.audit()
    moved = installation.run("--output", "json", "state", "migrate", "--to", postgres_url)
    assert moved.exit_code == 0, moved
    assert moved.json()["partners"] == 1 and moved.json()["auditEntries"] == len(audit)

    on_postgres = Installation(installation.repo, installation.home, extra=("--state", postgres_url))
    assert on_postgres.actions() == [], "nothing re-issued, nothing to do"
    assert on_postgres.status()[ACME] == before
    assert on_postgres.audit() == audit
    assert on_postgres.run("audit", "verify").exit_code == 0
    secret = installation.deliver(ACME)["client_secret"]
    assert on_postgres.secrets().verify(f"{TENANT}.acme-bank", secret) is not None, "the same credential"

    again = installation.run("state", "migrate", "--to", postgres_url)
    assert again.exit_code == 1 and "already holds an installation" in again.stderr


def _shown(url: str) -> str:
    """How messages name the database: user, host, port and name; no password, no options."""
    parts = urlsplit(url)
    return f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"


def test_the_password_comes_from_libpqs_environment(postgres_server: PostgresServer, postgres_url: str) -> None:
    """A role that must give a password (scram-sha-256): PGPASSWORD lets it in, and no message shows it."""
    if postgres_server.data is None:
        pytest.skip("changing pg_hba.conf needs a server of our own")
    role, password = "partnerctl_pw", "Pw-" + secrets.token_hex(8)
    with psycopg.connect(postgres_server.url, autocommit=True) as db:
        db.execute(f"DROP ROLE IF EXISTS {role}")
        db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' SUPERUSER")
    hba = postgres_server.data / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    try:
        with psycopg.connect(postgres_server.url, autocommit=True) as db:
            db.execute("SELECT pg_reload_conf()")
        url = postgres_url.replace("postgres@", f"{role}@", 1)
        refused = partnerctl("--state", url, "status")
        assert refused.exit_code == 1 and "refused the connection" in refused.stderr, refused
        assert "PGPASSWORD" in refused.stderr
        os.environ["PGPASSWORD"] = "wrong-" + password
        wrong = partnerctl("--state", url, "status")
        assert wrong.exit_code == 1 and password not in wrong.stderr + wrong.stdout
        os.environ["PGPASSWORD"] = password
        allowed = partnerctl("--state", url, "--output", "json", "status")
        assert allowed.exit_code == 0 and allowed.json() == {"partners": []}
        assert password not in allowed.stdout + allowed.stderr
    finally:
        os.environ.pop("PGPASSWORD", None)
        hba.write_text(original)
        with psycopg.connect(postgres_server.url, autocommit=True) as db:
            db.execute("SELECT pg_reload_conf()")
