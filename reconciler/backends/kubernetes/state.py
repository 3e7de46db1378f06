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
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch

from reconciler.backends.kubernetes import api as kube
from reconciler.errors import StoreUnavailable, WriteConflict
from reconciler.stores.records import AuditEvent, PartnerRecord
from reconciler.vocabulary import Event

GROUP, VERSION, PLURAL, KIND = "partners.scp.dev", "v1", "partnerintegrations", "PartnerIntegration"
PAGE = 500
WATCH_SECONDS = 300  # a watch is renewed this often (the server may end it sooner)
RETRIES = 5
WARNING_EVENTS = {Event.WEBHOOK_FAILING, Event.WEBHOOK_FLAGGED, Event.WEBHOOK_DEACTIVATED, Event.ACCESS_DENIED,
                  Event.CREDENTIAL_DELIVERY_REFUSED, Event.CREDENTIAL_REVOKED}  # fmt: skip


def object_name(key: str) -> str:
    """``tenant/partner`` as an object name: both are DNS labels, so ``tenant.partner`` is a valid name."""
    return key.replace("/", ".", 1)


class ChangeWatch:
    """Follows the PartnerIntegrations of a namespace with a WATCH, so that a long-running process (the
    loop, the gateway) knows whether anything changed without asking the API server each time.

    Its version is the resourceVersion of the last change it saw (or of the LIST it started from),
    moved at once by this process's own writes. While the watch is down (an error, a 410 Gone that
    needs a fresh LIST, a Role without ``watch``), it has no version and the store asks the server."""

    def __init__(self, objects: client.CustomObjectsApi, namespace: str) -> None:
        self._objects, self.namespace = objects, namespace
        self._lock = threading.Lock()
        self._version: int | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="partnerintegrations-watch", daemon=True)
        self._thread.start()

    def version(self) -> str | None:
        with self._lock:
            return None if self._version is None else f"watch:{self._version}"

    def saw(self, resource_version: str) -> None:
        """A change this process made itself (the watch reports it too, a moment later)."""
        with self._lock:
            if self._version is not None and resource_version.isdigit():
                self._version = max(self._version, int(resource_version))

    def stop(self) -> None:
        self._stopped.set()

    def _follow(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except Exception:  # any failure: no version until a fresh LIST succeeds
                failures += 1
            with self._lock:
                self._version = None
            self._stopped.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _list_and_watch(self) -> None:
        page: Any = self._objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, limit=1)
        start = str(page.get("metadata", {}).get("resourceVersion", ""))
        if not start.isdigit():
            raise ValueError("a resourceVersion that is not a number: cannot order changes")
        with self._lock:
            self._version = int(start)
        resume = start
        while not self._stopped.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._objects.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
                resource_version=resume, allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
                _request_timeout=WATCH_SECONDS + 10, deserialize=False,
            )  # fmt: skip
            for event in stream:
                if self._stopped.is_set():
                    return
                seen = str(((event.get("object") or {}).get("metadata") or {}).get("resourceVersion", ""))
                if event.get("type") == "ERROR" or not seen.isdigit():
                    return  # 410 Gone and the like: start again from a fresh LIST
                resume = seen
                if event.get("type") != "BOOKMARK":  # a bookmark says only that the watch is still current
                    with self._lock:
                        self._version = max(self._version or 0, int(seen))


class KubernetesPartners:
    """PartnerIntegration objects in one namespace. ``watch``: a long-running process follows changes
    with a WATCH instead of asking for the collection's version on every :meth:`version`."""

    def __init__(
        self,
        namespace: str,
        *,
        api: client.ApiClient | None = None,
        cache_seconds: float = 0.0,
        watch: bool = False,
    ) -> None:
        self.namespace = namespace
        self._cache_seconds = cache_seconds  # without a watch: at most one LIST per this many seconds
        self._version: tuple[float, str | None] | None = None
        self._api = api or kube.api_client()
        self._objects = client.CustomObjectsApi(self._api)
        self._core = client.CoreV1Api(self._api)
        self._known: dict[str, tuple[str, str | None]] = {}  # key -> (resourceVersion, uid)
        self._watch = ChangeWatch(self._objects, namespace) if watch else None

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
        """Moves with every change of a PartnerIntegration here, by partnerctl or by hand.

        With a watch, the last change it saw (no request at all). Without one, the collection's
        resourceVersion from a one-item LIST: cheap, but it follows every write in the cluster, so the
        plan memo hits less often. With ``cache_seconds`` that answer is reused that long, so request
        rates never reach the API server."""
        if self._watch is not None:
            followed = self._watch.version()
            if followed is not None:
                return followed
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
            if self._watch is not None:
                self._watch.saw(answer["metadata"]["resourceVersion"])
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
        if self._watch is not None:
            self._watch.stop()
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
