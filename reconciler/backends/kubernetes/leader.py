"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection package does it.

Every candidate tries to acquire or renew the Lease every ``retry_period``. The holder renews it; a
candidate takes it over only once the record it last saw has not changed for ``lease_duration``,
measured on its own clock (so clock skew between nodes does not matter). A leader that has not
renewed for ``renew_deadline`` (shorter than the lease) stops considering itself leader before
anyone else may take over, and one that sees another holder stops at once. On a clean exit the
leader releases the Lease, so a standby takes over without waiting.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from reconciler.backends.kubernetes import api as kube
from reconciler.errors import ReconcilerError, WriteConflict


def default_identity() -> str:
    """``POD_NAME`` inside a pod, else the host name and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class LeaseElector:
    def __init__(
        self,
        *,
        namespace: str,
        name: str = "partnerctl-leader",
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        api: client.ApiClient | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline or lease_duration * 2 / 3  # client-go: 15 s lease, 10 s deadline
        self.retry_period = retry_period or max(0.2, lease_duration * 2 / 15)  # client-go: 2 s
        self._leases = client.CoordinationV1Api(api or kube.api_client())
        self._on_change = on_change
        self._leading_until = 0.0  # monotonic; leader while now < this
        self._observed: tuple[str, float] | None = None  # (record fingerprint, when we first saw it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def is_leader(self) -> bool:
        return time.monotonic() < self._leading_until

    def start(self) -> None:
        self._thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and, if leading, release the Lease for a standby to take at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_period * 2 + 5)
        if self.is_leader():
            self._leading_until = 0.0
            with contextlib.suppress(ReconcilerError):  # else it expires after lease_duration anyway
                self._release()

    def _campaign(self) -> None:
        while not self._stop.is_set():
            was_leader = self.is_leader()
            try:
                if self.try_acquire_or_renew():
                    self._leading_until = time.monotonic() + self.renew_deadline
                else:
                    self._leading_until = 0.0
                self.last_error = None
            except ReconcilerError as error:
                self.last_error = str(error)  # keeps leading only until renew_deadline passes
            if self.is_leader() != was_leader and self._on_change is not None:
                self._on_change(self.is_leader())
            self._stop.wait(self.retry_period)

    def try_acquire_or_renew(self) -> bool:
        """One round: True when we hold the Lease afterwards."""
        now = _micro_time()
        lease = kube.call(
            f"read Lease {self.name}",
            lambda: self._leases.read_namespaced_lease(self.name, self.namespace),
            missing=lambda: None,
        )
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(acquire_time=now, renew_time=now, transitions=0),
            )
            try:
                kube.call("create the Lease", lambda: self._leases.create_namespaced_lease(self.namespace, body))
            except WriteConflict:
                return False  # another candidate created it first
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        fingerprint = f"{holder}|{spec.renew_time}|{lease.metadata.resource_version}"
        if self._observed is None or self._observed[0] != fingerprint:
            self._observed = (fingerprint, time.monotonic())
        expired = time.monotonic() > self._observed[1] + (spec.lease_duration_seconds or self.lease_duration)
        if holder and holder != self.identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        acquire_time = spec.acquire_time if holder == self.identity else now
        lease.spec = self._spec(acquire_time=acquire_time, renew_time=now, transitions=transitions)
        try:  # the resourceVersion we read makes this a compare-and-swap: two takers, one winner
            kube.call("renew the Lease", lambda: self._replace(lease))
        except WriteConflict:
            return False
        return True

    def _release(self) -> None:
        lease = kube.call("read the Lease", lambda: self._leases.read_namespaced_lease(self.name, self.namespace))
        if lease.spec.holder_identity != self.identity:
            return
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time = _micro_time()
        kube.call("release the Lease", lambda: self._replace(lease))

    def _replace(self, lease: client.V1Lease) -> Any:
        return self._leases.replace_namespaced_lease(self.name, self.namespace, lease)

    def _spec(self, *, acquire_time: Any, renew_time: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=max(1, round(self.lease_duration)),
            acquire_time=acquire_time,
            renew_time=renew_time,
            lease_transitions=transitions,
        )


def _micro_time() -> datetime:
    return datetime.now(UTC)
