"""The PostgreSQL backend (``--state postgresql://…``): partner records and the journal for many replicas.

    database.py   the connection pool, transactions, and PostgreSQL's errors as partnerctl's kinds
    schema.py     the versioned migrations (``partnerctl db migrate``) and the check at start
    state.py      PostgresPartners and PostgresJournal: records, audit chain, memo, outbox
    changes.py    LISTEN/NOTIFY: every replica hears of a changed record within a second
    leader.py     leader election with an advisory lock, for installations outside Kubernetes
    mirror.py     partner records mirrored to PartnerIntegration objects for ``kubectl get pi``
    transfer.py   ``partnerctl state migrate``: an embedded installation moved into PostgreSQL

Several processes (reconcilers, gateways, dispatcher workers) share one database and nothing else.
"""

from reconciler.backends.postgresql.database import Database, display_url

__all__ = ["Database", "display_url"]
