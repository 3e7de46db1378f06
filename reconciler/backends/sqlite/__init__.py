"""The embedded installation under --home: SQLite state and journal, ``audit.jsonl``, the local secret store.

    database.py    one SQLite file: a connection per thread, transactions, errors with kinds
    state.py       partner records and the installation journal (audit head, settings, memo, outbox)
    audit_file.py  the audit chain as JSON Lines, written in two phases around the committed head
    lock.py        one writer at a time (flock)
    secrets.py     keyed hashes and sealed pickups under a 0600 key file
"""

from __future__ import annotations

from reconciler.backends.sqlite.secrets import LocalSecretStore
from reconciler.backends.sqlite.state import SqliteJournal, SqlitePartners

__all__ = ["LocalSecretStore", "SqliteJournal", "SqlitePartners"]
