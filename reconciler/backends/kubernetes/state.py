"""The Kubernetes state store: one PartnerIntegration object (partners.scp.dev/v1) per partner.

What ``kubectl get partnerintegrations`` shows is the live state itself: the status subresource holds
the partner's phase, health, conditions, applied revision, approval record and timestamps, and
under ``status.record`` the whole record the reconciler works from. Writes carry the object's
``resourceVersion``; a 409 Conflict (someone wrote in between) is retried on a fresh read.
Applied actions and LOG-01 become Kubernetes Events on the object.

This store keeps partner records only (a :class:`~reconciler.stores.partners.PartnerStore`); the
installation journal (audit chain, settings, memo, webhook outbox) is another backend's job.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from reconciler.backends.kubernetes import api as kube
from reconciler.errors import StoreUnavailable, WriteConflict
from reconciler.stores.records import AuditEvent, PartnerRecord
from reconciler.vocabulary import Event

GROUP, VERSION, PLURAL, KIND = "partners.scp.dev", "v1", "partnerintegrations", "PartnerIntegration"
PAGE = 500
RETRIES = 5
WARNING_EVENTS = {Event.WEBHOOK_FAILING, Event.WEBHOOK_FLAGGED, Event.WEBHOOK_DEACTIVATED, Event.ACCESS_DENIED,
                  Event.CREDENTIAL_DELIVERY_REFUSED, Event.CREDENTIAL_REVOKED}  # fmt: skip


def object_name(key: str) -> str:
    """``tenant/partner`` as an object name: both are DNS labels, so ``tenant.partner`` is a valid name."""
    return key.replace("/", ".", 1)


class KubernetesPartners:
    """PartnerIntegration objects in one namespace."""

    def __init__(self, namespace: str, *, api: client.ApiClient | None = None, cache_seconds: float = 0.0) -> None:
        self.namespace = namespace
        self._cache_seconds = cache_seconds  # the gateway's: at most one LIST per this many seconds
        self._version: tuple[float, str | None] | None = None
        self._api = api or kube.api_client()
        self._objects = client.CustomObjectsApi(self._api)
        self._core = client.CoreV1Api(self._api)
        self._known: dict[str, tuple[str, str | None]] = {}  # key -> (resourceVersion, uid)

    # --- partner records --------------------------------------------------------------------------

    def partners(self) -> dict[str, PartnerRecord]:
        return self._list()

    def partner(self, key: str) -> PartnerRecord | None:
        found = kube.call(
            f"read PartnerIntegration {object_name(key)}",
            lambda: self._objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                               object_name(key)),
            missing=lambda: None,
        )  # fmt: skip
        return self._remember(found) if found else None

    def version(self) -> str | None:
        """The collection's resourceVersion (any write moves it, hand edits too).

        A one-item LIST: cheap, but in a busy cluster the collection's version follows the whole
        cluster's, so the plan memo hits less often there than on one machine. With ``cache_seconds``
        (the gateway) the answer is reused that long, so request rates never reach the API server."""
        if self._version is not None and time.monotonic() < self._version[0]:
            return self._version[1]
        page = kube.call(
            "list PartnerIntegrations",
            lambda: self._objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, limit=1),
        )
        version = str(page.get("metadata", {}).get("resourceVersion"))
        if self._cache_seconds > 0:
            self._version = (time.monotonic() + self._cache_seconds, version)
        return version

    def save(self, records: list[PartnerRecord]) -> None:
        for record in records:
            self._write(record)
        self._version = None

    def _list(self) -> dict[str, PartnerRecord]:
        records: dict[str, PartnerRecord] = {}
        token: str | None = None
        while True:
            page = kube.call(
                "list PartnerIntegrations",
                lambda token=token: self._objects.list_namespaced_custom_object(  # type: ignore[misc]
                    GROUP, VERSION, self.namespace, PLURAL, limit=PAGE, **({"_continue": token} if token else {})
                ),
            )
            for item in page.get("items", []):
                record = self._remember(item)
                if record is not None:
                    records[record.key] = record
            token = page.get("metadata", {}).get("continue")
            if not token:
                return records

    def _remember(self, item: dict[str, Any]) -> PartnerRecord | None:
        metadata = item.get("metadata", {})
        stored = (item.get("status") or {}).get("record")
        if not stored:
            return None  # created, status not written yet: the next apply finishes it
        record = PartnerRecord.from_json(stored)
        self._known[record.key] = (metadata.get("resourceVersion", ""), metadata.get("uid"))
        return record

    def _write(self, record: PartnerRecord) -> None:
        name = object_name(record.key)
        for _ in range(RETRIES):
            if record.key not in self._known:
                self._create_or_read(record)
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                    "metadata": {"name": name, "namespace": self.namespace,
                                 "resourceVersion": self._known[record.key][0]},
                    "status": _status(record)}  # fmt: skip
            try:
                answer = kube.call(
                    f"write the status of PartnerIntegration {name}",
                    lambda body=body: self._objects.replace_namespaced_custom_object_status(  # type: ignore[misc]
                        GROUP, VERSION, self.namespace, PLURAL, name, body
                    ),
                )
            except WriteConflict:
                self._known.pop(record.key, None)  # someone wrote in between: read it again, then write ours
                continue
            self._known[record.key] = (answer["metadata"]["resourceVersion"], answer["metadata"].get("uid"))
            return
        raise WriteConflict(f"PartnerIntegration {name} kept changing under us ({RETRIES} conflicts); run again")

    def _create_or_read(self, record: PartnerRecord) -> None:
        """Learn the object's resourceVersion, creating the object if there is none."""
        name = object_name(record.key)
        try:
            found = kube.call(
                f"create PartnerIntegration {name}",
                lambda: self._objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                                      _new_object(record)),
            )  # fmt: skip
        except WriteConflict:  # it exists (AlreadyExists is a 409 too)
            found = kube.call(
                f"read PartnerIntegration {name}",
                lambda: self._objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            )
        self._known[record.key] = (found["metadata"]["resourceVersion"], found["metadata"].get("uid"))

    # --- Kubernetes Events ------------------------------------------------------------------------

    def announce(self, entries: list[AuditEvent]) -> None:
        """One Event per audit entry about a partner (applied actions, LOG-01); best effort."""
        for entry in entries:
            partner = entry.partner
            if not partner:
                continue
            name = object_name(partner)
            reason = "".join(part.capitalize() for part in entry.event.replace("_", ".").split("."))
            details = entry.details or {}
            note = entry.event + (f" ({details['code']})" if details.get("code") else "")
            if details.get("reason"):
                note += f": {details['reason']}"
            now = datetime.now(UTC)
            event = client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=f"{name}.{secrets.token_hex(8)}", namespace=self.namespace),
                involved_object=client.V1ObjectReference(api_version=f"{GROUP}/{VERSION}", kind=KIND, name=name,
                                                         namespace=self.namespace,
                                                         uid=(self._known.get(partner) or ("", None))[1]),
                reason=reason[:128], message=note[:1024],
                type="Warning" if entry.event in WARNING_EVENTS or details.get("code") == "LOG-01" else "Normal",
                source=client.V1EventSource(component="partnerctl"),
                first_timestamp=now, last_timestamp=now, count=1,
            )  # fmt: skip
            with contextlib.suppress(StoreUnavailable, WriteConflict):  # a courtesy; the audit log is the record
                kube.call("record an Event", lambda event=event: self._core.create_namespaced_event(  # type: ignore[misc]
                    self.namespace, event))  # fmt: skip

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]


def _new_object(record: PartnerRecord) -> dict[str, Any]:
    tenant, partner = record.key.split("/", 1)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": object_name(record.key),
                     "labels": {"partners.scp.dev/tenant": tenant, "partners.scp.dev/partner": partner,
                                "app.kubernetes.io/managed-by": "partnerctl"}},
        "spec": {"tenant": tenant, "partner": partner},
    }  # fmt: skip


def _status(record: PartnerRecord) -> dict[str, Any]:
    return {
        "phase": record.phase,
        "health": record.health,
        "conditions": record.conditions,
        "appliedRevision": record.revision,
        "approval": record.approval,
        "lastSuccessfulSync": record.last_successful_sync,
        "updatedAt": record.updated_at,
        "webhooks": [{"name": hook.name, "state": hook.state, "consecutiveFailures": hook.consecutive_failures}
                     for hook in record.webhooks.values()],
        "record": record.to_json(),
    }  # fmt: skip
