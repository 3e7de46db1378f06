"""Reaching the Kubernetes API: the pod's service account inside a cluster, KUBECONFIG outside one;
the API's failures as partnerctl's error kinds."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3.exceptions
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from reconciler.errors import Stalled, StoreUnavailable, UsageError, WriteConflict

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def api_client() -> client.ApiClient:
    """An API client: in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, else ``KUBECONFIG`` or ~/.kube/config."""
    configuration = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                # the library reads KUBECONFIG once, at import; read it now
                config_file=os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config"),
                client_configuration=configuration,
            )
    except (config.ConfigException, OSError) as error:
        raise UsageError(
            f"no access to a Kubernetes API ({error}): run inside a pod with a service account, or set KUBECONFIG"
        ) from error
    configuration.retries = 2
    return client.ApiClient(configuration)


def current_namespace(default: str = "default") -> str:
    """POD_NAMESPACE, else the service account's namespace, else ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default


def call(what: str, request: Callable[[], Any], *, missing: Callable[[], Any] | None = None) -> Any:
    """One API request, its failures turned into partnerctl errors (409 is :class:`WriteConflict`)."""
    try:
        return request()
    except ApiException as error:
        if error.status == 404 and missing is not None:
            return missing()
        if error.status == 409:
            raise WriteConflict(f"Kubernetes API: conflict while trying to {what}: {_reason(error)}") from error
        if error.status in (401, 403):
            raise Stalled(
                f"the Kubernetes API refused to {what} ({error.status} {_reason(error)}): check the service "
                "account's Role (deploy/base/rbac.yaml) and that the PartnerIntegration CRD is installed"
            ) from error
        if error.status == 404:
            raise Stalled(
                f"the Kubernetes API has nothing at the path used to {what}: is the PartnerIntegration CRD "
                "installed? kubectl apply -f deploy/base/crd.yaml"
            ) from error
        if error.status in (400, 422):
            raise Stalled(f"the Kubernetes API rejected a request to {what}: {_reason(error)}") from error
        raise StoreUnavailable(f"the Kubernetes API failed to {what}: {error.status} {_reason(error)}") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise StoreUnavailable(f"cannot reach the Kubernetes API (while trying to {what}): {error}") from error


def _reason(error: ApiException) -> str:
    try:
        body: Any = json.loads(error.body or "{}")
        return str(body.get("message") or error.reason)
    except ValueError:
        return str(error.reason)
