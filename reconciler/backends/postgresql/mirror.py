"""Partner records mirrored from PostgreSQL to PartnerIntegration objects, so ``kubectl get pi`` keeps working.

PostgreSQL is the truth; the mirror is a courtesy for people with ``kubectl``. Every record saved
(directly or with its audit entries) is copied to its object's status after the commit, and audited
events become Kubernetes Events. A failed copy never fails the write: it is logged, and the next
copy writes every record again, so the objects catch up. Hand edits of the objects are overwritten.
"""

from __future__ import annotations

import logging

from reconciler.backends.postgresql.state import PostgresPartners
from reconciler.errors import ReconcilerError
from reconciler.stores.partners import PartnerStore
from reconciler.stores.records import AuditEvent, PartnerRecord

__all__ = ["MirroredPartners", "mirrored"]

log = logging.getLogger("partnerctl.postgresql")


class MirroredPartners:
    def __init__(self, primary: PostgresPartners, mirror: PartnerStore) -> None:
        self.primary, self.mirror = primary, mirror
        self._behind = True  # the first copy writes everything: the objects may predate this process

    def partners(self) -> dict[str, PartnerRecord]:
        return self.primary.partners()

    def partner(self, key: str) -> PartnerRecord | None:
        return self.primary.partner(key)

    def version(self) -> str | None:
        return self.primary.version()

    def save(self, records: list[PartnerRecord]) -> None:
        self.primary.save(records)
        self.copy(records)

    def copy(self, records: list[PartnerRecord]) -> None:
        """Write ``records`` (all of them, when an earlier copy failed) to the mirror; never raises."""
        if not records and not self._behind:
            return
        try:
            self.mirror.save(list(self.primary.partners().values()) if self._behind else records)
            self._behind = False
        except ReconcilerError as error:
            self._behind = True
            log.warning("mirroring partner records to Kubernetes failed (%s); retried on the next write", error)

    def announce(self, entries: list[AuditEvent]) -> None:
        try:
            self.mirror.announce(entries)
        except ReconcilerError as error:
            log.warning("recording Kubernetes Events failed (%s)", error)

    def close(self) -> None:
        self.mirror.close()
        self.primary.close()


def mirrored(primary: PostgresPartners, target: str) -> MirroredPartners:
    """``target``: ``kubernetes://NAMESPACE``, or ``kubernetes`` for the pod's own namespace."""
    from reconciler.backends.kubernetes.api import current_namespace
    from reconciler.backends.kubernetes.state import KubernetesPartners
    from reconciler.errors import UsageError

    scheme, _, namespace = target.partition("://")
    if scheme != "kubernetes":
        raise UsageError(f"--state …?mirror={target}: the mirror is kubernetes://NAMESPACE (or kubernetes)")
    return MirroredPartners(primary, KubernetesPartners(namespace or current_namespace()))
