"""deploy/: valid against the Kubernetes OpenAPI schemas, locked down, and allowing exactly what partnerctl does."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from reconciler.backends.kubernetes.leader import LeaseElector
from reconciler.backends.kubernetes.state import _new_object, _status
from reconciler.stores.records import PartnerRecord, WebhookRecord
from tests.support.cluster import FakeCluster
from tests.support.engine import Installation
from tests.support.servers import HttpRecorder

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BASE = DEPLOY / "base"
KUBERNETES_VERSION = "1.30.0"


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for doc in documents() if doc["kind"] == name]


@pytest.mark.parametrize("document", documents(), ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}")
def test_every_manifest_is_valid_for_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomizations_list_every_manifest() -> None:
    manifests = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]) == manifests
    assert yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"] == ["base"]
    assert yaml.safe_load((DEPLOY / "kind" / "kustomization.yaml").read_text())["resources"] == ["../base"]


def test_the_crd_has_a_status_subresource_and_the_printer_columns() -> None:
    (crd,) = kind("CustomResourceDefinition")
    (version,) = crd["spec"]["versions"]
    assert crd["metadata"]["name"] == "partnerintegrations.partners.scp.dev" and version["name"] == "v1"
    assert version["subresources"] == {"status": {}}
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Health", "Last Sync", "Approved By", "Age"]


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI v3.0 ``nullable`` as JSON Schema null types (what the API server does for us)."""
    if isinstance(node, dict):
        converted = {k: openapi_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if converted.pop("nullable", False):
            converted["type"] = [converted["type"], "null"]
        return converted
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    return node


def test_what_the_store_writes_fits_the_crd_schema() -> None:
    (crd,) = kind("CustomResourceDefinition")
    schema = openapi_to_json_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    record = PartnerRecord(
        key="ministry-social-affairs/acme-bank", phase="ACTIVE", health="HEALTHY", revision="ab" * 20,
        approval={"commit": "cd" * 20, "approver": "alice@msa.example", "policyDocument": "DSA-1",
                  "approvedAt": "2026-11-28T12:00:00+00:00"},
        conditions=[{"type": "Ready", "status": "True", "reason": "Active", "message": "",
                     "lastTransitionTime": "2026-11-28T12:00:00+00:00"}],
        webhooks={"payment-events": WebhookRecord("payment-events", "https://h.example/x", ["payment.status.changed"])},
    )  # fmt: skip
    document = {**_new_object(record), "status": _status(record)}
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    broken = copy.deepcopy(document)
    broken["status"]["phase"] = "HAPPY"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_deployment_is_two_leader_elected_locked_down_replicas() -> None:
    (deployment,) = kind("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "partnerctl"
    containers = {container["name"]: container for container in pod["containers"]}
    assert "--leader-elect" in containers["reconciler"]["args"]
    for container in containers.values():  # every command run in the pod (kubectl exec too) uses the same stores
        environment = {item["name"]: item.get("value") for item in container["env"]}
        assert environment["PARTNERCTL_STATE"] == "kubernetes://$(POD_NAMESPACE)"
        assert list(environment).index("POD_NAMESPACE") < list(environment).index("PARTNERCTL_STATE")
    for container in containers.values():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert containers["reconciler"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    services = {service["metadata"]["name"]: service for service in kind("Service")}
    assert services["partnerctl-gateway"]["spec"]["ports"][0]["targetPort"] == "http"


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str | None) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )  # fmt: skip


@pytest.mark.parametrize("cluster", ["fake"], indirect=True)  # the fake logs every request it answers
def test_the_role_allows_what_partnerctl_does_and_nothing_broader(
    cluster_installation: Installation, cluster: FakeCluster, receiver: tuple[HttpRecorder, str]
) -> None:
    (role,) = kind("Role")
    rules = role["rules"]
    assert not any("*" in rule["verbs"] + rule["resources"] + rule["apiGroups"] for rule in rules)
    assert not any("secrets" in rule["resources"] for rule in rules), "credentials live in Vault, not Secrets"

    cluster_installation.repo.write_partners(receiver[1], "acme-bank")
    cluster_installation.repo.commit("Onboard ACME")
    cluster_installation.apply()
    cluster_installation.run("credentials", "rotate", "ministry-social-affairs/acme-bank")
    elector = LeaseElector(namespace="scp", identity="pod-a", lease_duration=2)
    assert elector.try_acquire_or_renew() and elector.try_acquire_or_renew()
    elector.stop()

    verbs = {"GET": "get", "LIST": "list", "WATCH": "watch", "POST": "create", "PUT": "update", "DELETE": "delete"}
    groups = {"partnerintegrations": "partners.scp.dev", "leases": "coordination.k8s.io", "events": ""}
    for request in cluster.fake.requests:
        method, resource = request.split()
        name = "partnerctl-leader" if resource == "leases" and method != "POST" else None
        assert allowed(rules, verbs[method], groups[resource.split("/")[0]], resource, name), request
