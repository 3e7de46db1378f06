"""One view of a Kubernetes API for the cluster tests, whether it is our fake or the real server.

partnerctl always talks to it through the real ``kubernetes`` client, as the identity in
``kubeconfig`` (on the real server: the least-privilege ``partnerctl`` ServiceAccount of
``deploy/base/rbac.yaml``). Tests look and reach behind partnerctl's back through these methods, as an
administrator would (on the real server: the ``system:masters`` identity).
"""

from __future__ import annotations

import re
import secrets
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.apiserver import KubeServers, find_binaries
from tests.support.kube import FakeKubernetes, RunningKubernetes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "partners.scp.dev", "v1"


class Cluster(Protocol):
    real: bool
    namespace: str
    kubeconfig: Path  # partnerctl's identity

    def get(self, plural: str, name: str) -> dict[str, Any] | None: ...

    def items(self, plural: str) -> list[dict[str, Any]]: ...

    def edit(self, plural: str, name: str, change: Callable[[dict[str, Any]], None], *, status: bool = False) -> None:
        """Change an object by hand: ``change`` mutates it, and it is written back (its status, with ``status``)."""

    def requests(self, verb: str, resource: str) -> int:
        """How many ``verb`` requests (GET, LIST, POST, PUT) for ``resource`` (e.g. ``partnerintegrations/status``)
        the server has answered so far."""


class FakeCluster:
    """``tests/support/kube.py``'s server."""

    real = False

    def __init__(self, folder: Path, namespace: str = "scp") -> None:
        self.fake = FakeKubernetes()
        folder.mkdir(parents=True, exist_ok=True)
        self._server = RunningKubernetes(self.fake, folder)
        self.namespace = namespace
        self.kubeconfig = self._server.kubeconfig

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.fake.get(plural, name, self.namespace)

    def items(self, plural: str) -> list[dict[str, Any]]:
        return self.fake.items(plural, self.namespace)

    def edit(self, plural: str, name: str, change: Callable[[dict[str, Any]], None], *, status: bool = False) -> None:
        with self.fake.lock:
            change(self.fake.objects[plural, self.namespace, name])
            self.fake.touch(plural, self.namespace, name)

    def requests(self, verb: str, resource: str) -> int:
        return self.fake.requests[f"{verb} {resource}"]

    def stop(self) -> None:
        self._server.stop()


class RealCluster:
    """A namespace of its own on the session's real API server, with ``deploy/base/rbac.yaml``'s Role bound
    to partnerctl's identity in it."""

    real = True

    def __init__(self, servers: KubeServers) -> None:
        self.servers = servers
        self.namespace = f"t-{secrets.token_hex(4)}"
        self.kubeconfig = servers.user_kubeconfig
        assert servers.admin_kubeconfig is not None
        self._api = config.new_client_from_config(config_file=str(servers.admin_kubeconfig))
        self._objects = client.CustomObjectsApi(self._api)
        core = client.CoreV1Api(self._api)
        core.create_namespace({"metadata": {"name": self.namespace}})
        rbac = client.RbacAuthorizationV1Api(self._api)
        for document in yaml.safe_load_all((PROJECT_ROOT / "deploy" / "base" / "rbac.yaml").read_text()):
            if document["kind"] == "Role":
                rbac.create_namespaced_role(self.namespace, document)
            elif document["kind"] == "RoleBinding":  # its subject stays scp/partnerctl: the test identity
                rbac.create_namespaced_role_binding(self.namespace, document)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            if plural == "partnerintegrations":
                found: Any = self._objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
            elif plural == "leases":
                found = client.CoordinationV1Api(self._api).read_namespaced_lease(name, self.namespace)
            else:
                found = client.CoreV1Api(self._api).read_namespaced_event(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(self._api.sanitize_for_serialization(found))

    def items(self, plural: str) -> list[dict[str, Any]]:
        if plural == "partnerintegrations":
            found: Any = self._objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        elif plural == "leases":
            found = client.CoordinationV1Api(self._api).list_namespaced_lease(self.namespace)
        else:
            found = client.CoreV1Api(self._api).list_namespaced_event(self.namespace)
        return list(self._api.sanitize_for_serialization(found)["items"])

    def edit(self, plural: str, name: str, change: Callable[[dict[str, Any]], None], *, status: bool = False) -> None:
        """Read, change, write back; again on a 409, since partnerctl may be writing the same object
        (the fake does the same under its lock: there, a hand edit never loses a race)."""
        for _ in range(20):
            stored = self.get(plural, name)
            assert stored is not None, f"{plural}/{name} is not there"
            change(stored)
            try:
                self._replace(plural, name, stored, status=status)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
        raise AssertionError(f"{plural}/{name} kept changing under the hand edit")

    def _replace(self, plural: str, name: str, stored: dict[str, Any], *, status: bool) -> None:
        if plural == "partnerintegrations":
            replace = (self._objects.replace_namespaced_custom_object_status if status
                       else self._objects.replace_namespaced_custom_object)  # fmt: skip
            replace(GROUP, VERSION, self.namespace, plural, name, stored)
        elif plural == "leases":
            client.CoordinationV1Api(self._api).replace_namespaced_lease(name, self.namespace, stored)
        else:
            raise ValueError(f"no hand edits of {plural}")

    def requests(self, verb: str, resource: str) -> int:
        """From the server's own ``apiserver_request_total`` metric, summed over response codes."""
        plural, _, subresource = resource.partition("/")
        request = urllib.request.Request(
            f"{self.servers.server_url}/metrics", headers={"Authorization": f"Bearer {self.servers.admin.token}"}
        )
        context = ssl.create_default_context(cafile=str(self.servers.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            text = answer.read().decode()
        total = 0
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if (labels.get("verb"), labels.get("resource"), labels.get("subresource", "")) == (
                verb, plural, subresource
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def kubectl(self, *args: str, admin: bool = True) -> str:
        done = self.servers.kubectl("-n", self.namespace, *args, admin=admin)
        return str(done.stdout)

    def stop(self) -> None:
        try:
            client.CoreV1Api(self._api).delete_namespace(self.namespace)  # goes on in the background
        finally:
            self._api.close()


@contextmanager
def opened_cluster(kind: str, folder: Path, servers: KubeServers | None) -> Iterator[FakeCluster | RealCluster]:
    """A fake cluster (``kind`` "fake") or a namespace of the real API server ``servers`` ("real")."""
    opened: FakeCluster | RealCluster
    if kind == "fake":
        opened = FakeCluster(folder)
    else:
        assert servers is not None
        opened = RealCluster(servers)
    try:
        yield opened
    finally:
        opened.stop()


@contextmanager
def real_api_server() -> Iterator[KubeServers | None]:
    """The real etcd and kube-apiserver (built by ``make kube``), the CRD of deploy/ installed and
    established; None where Go is missing to build them."""
    bin_dir = find_binaries()
    if bin_dir is None:
        yield None
        return
    with KubeServers(bin_dir) as servers:
        servers.kubectl("apply", "-f", str(PROJECT_ROOT / "deploy" / "base" / "crd.yaml"))
        servers.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/partnerintegrations.partners.scp.dev")  # fmt: skip
        yield servers
