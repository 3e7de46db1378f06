"""deploy/: valid against the Kubernetes OpenAPI schemas, locked down, nothing shared on disk, and allowing
exactly what partnerctl does."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from reconciler.backends.kubernetes.leader import LeaseElector
from reconciler.backends.kubernetes.state import _new_object, _status
from reconciler.backends.postgresql.database import split_options
from reconciler.stores.records import PartnerRecord, WebhookRecord
from tests.support import apps
from tests.support.cluster import FakeCluster
from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder, UvicornThread
from tests.support.vault import VaultSpace

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BASE = DEPLOY / "base"
KIND = DEPLOY / "kind"
KUBERNETES_VERSION = "1.30.0"
IMAGE = "ghcr.io/scp-platform/partnerctl"
PROXY_IMAGE = "quay.io/oauth2-proxy/oauth2-proxy"
SIDECARS = {"oauth2-proxy"}  # containers of partnerctl's pods that are not partnerctl: the console's sign-in
ACME = f"{TENANT}/acme-bank"


def load(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def documents() -> list[dict[str, Any]]:
    return load(BASE)


def kind(name: str, docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [doc for doc in (documents() if docs is None else docs) if doc["kind"] == name]


def deployments() -> dict[str, dict[str, Any]]:
    """partnerctl's Deployments in base, by component (reconciler, dispatcher, gateway)."""
    found = {}
    for deployment in kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "partnerctl", deployment["metadata"]["name"]
        found[labels["app.kubernetes.io/component"]] = deployment
    return found


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The pod's only container, or the one named after its component (the console's pod runs its proxy too)."""
    containers = pod(deployment)["containers"]
    component = deployment["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
    (container,) = containers if len(containers) == 1 else [c for c in containers if c["name"] == component]
    assert isinstance(container, dict)
    return container


def sidecar(deployment: dict[str, Any]) -> dict[str, Any] | None:
    found = [container for container in pod(deployment)["containers"] if container["name"] in SIDECARS]
    assert len(found) <= 1
    return found[0] if found else None


def every_container(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod(deployment).get("initContainers", [])) + list(pod(deployment)["containers"])


def partnerctl_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [container for container in every_container(deployment) if container["name"] not in SIDECARS]


def reachable_ports(deployment: dict[str, Any]) -> set[int]:
    """What clients may reach: the sign-in proxy's ports where the pod has one, else partnerctl's own."""
    front = sidecar(deployment) or main_container(deployment)
    return {port["containerPort"] for port in front.get("ports", [])}


def environment(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the tests read matchLabels only"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def expand(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: secretKeyRef values from ``secrets``
    ("NAME/KEY"), and $(VAR) replaced by a variable defined earlier in the list."""
    resolved: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            resolved[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: resolved.get(m[1], m[0]), item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            resolved[item["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
    return resolved


# --- schemas and kustomizations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document", documents() + load(KIND),
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)  # fmt: skip
def test_every_manifest_is_valid_for_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomizations_list_every_manifest() -> None:
    manifests = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]) == manifests
    assert yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"] == ["base"]
    base, *own = yaml.safe_load((KIND / "kustomization.yaml").read_text())["resources"]
    assert base == "../base"
    assert sorted(own) == sorted(p.name for p in KIND.glob("*.yaml") if p.name != "kustomization.yaml")


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


# --- the layout: nothing shared on disk ----------------------------------------------------------------


def test_no_volume_claim_anywhere_and_every_volume_is_scratch_or_configuration() -> None:
    for docs in (documents(), load(KIND)):
        assert not kind("PersistentVolumeClaim", docs) and not kind("StatefulSet", docs)
        for deployment in kind("Deployment", docs):
            for volume in pod(deployment).get("volumes", []):
                sources = set(volume) - {"name"}
                assert sources <= {"emptyDir", "configMap", "secret", "projected"}, (deployment["metadata"], volume)
    assert set(deployments()) == {"reconciler", "dispatcher", "gateway", "console"}
    for deployment in deployments().values():
        mounted = {mount["name"] for container in every_container(deployment)
                   for mount in container.get("volumeMounts", [])}  # fmt: skip
        declared = {volume["name"] for volume in pod(deployment)["volumes"]}
        assert mounted <= declared


def test_the_reconciler_is_two_leader_elected_replicas() -> None:
    reconciler = deployments()["reconciler"]
    assert reconciler["spec"]["replicas"] == 2
    assert main_container(reconciler)["args"][:2] == ["run", "--leader-elect"]
    assert pod(reconciler)["serviceAccountName"] == "partnerctl"
    (budget,) = [pdb for pdb in kind("PodDisruptionBudget")
                 if selects(pdb["spec"]["selector"], reconciler["spec"]["template"]["metadata"]["labels"])]  # fmt: skip
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_gateway_is_stateless_replicas_behind_an_autoscaler_and_a_disruption_budget() -> None:
    gateway = deployments()["gateway"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert main_container(gateway)["args"][:2] == ["gateway", "serve"]
    (autoscaler,) = kind("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": gateway["metadata"]["name"]}  # fmt: skip
    minimum = autoscaler["spec"]["minReplicas"]
    assert minimum >= 3 and autoscaler["spec"]["maxReplicas"] > minimum
    assert [metric["resource"]["name"] for metric in autoscaler["spec"]["metrics"]] == ["cpu"]
    # The autoscaler owns the count; a count in the Deployment would be re-applied over it (and must be >= 3).
    assert gateway["spec"].get("replicas", minimum) >= 3
    budgets = [pdb for pdb in kind("PodDisruptionBudget") if selects(pdb["spec"]["selector"], labels)]
    assert len(budgets) == 1 and budgets[0]["apiVersion"] == "policy/v1"
    assert budgets[0]["spec"].get("maxUnavailable") == 1 or budgets[0]["spec"]["minAvailable"] >= 2
    services = {service["metadata"]["name"]: service for service in kind("Service")}
    assert selects({"matchLabels": services["partnerctl-gateway"]["spec"]["selector"]}, labels)
    assert services["partnerctl-gateway"]["spec"]["ports"][0]["targetPort"] == "http"
    assert "http" in {port["name"] for port in main_container(gateway)["ports"]}


def test_the_dispatcher_runs_as_workers_of_their_own() -> None:
    dispatcher = deployments()["dispatcher"]
    assert main_container(dispatcher)["args"][0] == "dispatch"
    assert dispatcher["spec"]["replicas"] >= 2


def test_services_select_the_pods_that_have_their_ports() -> None:
    for service in kind("Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        (target,) = [d for d in deployments().values()
                     if selects(selector, d["spec"]["template"]["metadata"]["labels"])]  # fmt: skip
        names = {port["name"] for container in pod(target)["containers"] for port in container.get("ports", [])}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= names, service["metadata"]["name"]


def test_every_container_is_locked_down_with_resources_and_probes() -> None:
    for component, deployment in deployments().items():
        spec = pod(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in every_container(deployment):
            image = PROXY_IMAGE if container["name"] in SIDECARS else IMAGE
            assert container["image"].startswith(f"{image}:")
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
        for container in spec["containers"]:
            liveness = "/ping" if container["name"] in SIDECARS else "/healthz"  # oauth2-proxy's own
            assert container["livenessProbe"]["httpGet"]["path"] == liveness, component
            assert container["readinessProbe"]["httpGet"]["path"], component
    for component in ("reconciler", "dispatcher"):
        assert main_container(deployments()[component])["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_schema_is_migrated_before_any_partnerctl_process_starts() -> None:
    for component, deployment in deployments().items():
        first = pod(deployment)["initContainers"][0]
        assert first["args"] == ["db", "migrate"], component
        migrate, main = environment(first), environment(main_container(deployment))
        for name in ("PARTNERCTL_DATABASE_URL", "PGPASSWORD"):
            assert migrate[name]["valueFrom"] == main[name]["valueFrom"], (component, name)


# --- the database URL and password ---------------------------------------------------------------------

# A password in a PostgreSQL URL (postgresql://USER:PASSWORD@…), or as a libpq keyword in its query.
PASSWORD_IN_URL = re.compile(r"postgres(?:ql)?://[^/@\s:'\"]*:[^/@\s'\"]*@|[?&]password=", re.IGNORECASE)


def test_the_password_comes_only_from_a_secret_and_never_in_a_url() -> None:
    assert PASSWORD_IN_URL.search("postgresql://partnerctl:hunter2@db:5432/partnerctl")
    assert PASSWORD_IN_URL.search("postgres://db/partnerctl?sslmode=require&password=hunter2")
    assert not PASSWORD_IN_URL.search("postgresql://partnerctl@db:5432/partnerctl?sslmode=verify-full")
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert not PASSWORD_IN_URL.search(path.read_text()), path
    assert not kind("Secret"), "base ships no Secret: it is created out of band (deploy/base/config.yaml)"
    for deployment in kind("Deployment", documents() + load(KIND)):
        for container in every_container(deployment):
            for item in container.get("env", []):
                if re.search("PASSWORD|TOKEN|SECRET_ID", item["name"]):
                    assert "value" not in item and "secretKeyRef" in item["valueFrom"], (container["name"], item)
    for deployment in deployments().values():
        for container in partnerctl_containers(deployment):
            env = environment(container)
            secret = {"name": "partnerctl-postgresql"}
            assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {**secret, "key": "password"}
            assert env["PARTNERCTL_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {**secret, "key": "url"}
            # The state URL is built from the Secret's, defined earlier in the list (so $(…) expands).
            state = env["PARTNERCTL_STATE"]["value"]
            assert state.startswith("$(PARTNERCTL_DATABASE_URL)"), container["name"]
            names = list(env)
            assert names.index("PARTNERCTL_DATABASE_URL") < names.index("PARTNERCTL_STATE")


def test_the_state_mirrors_to_kubernetes_exactly_where_the_role_is_bound() -> None:
    url = "postgresql://partnerctl@db.internal:5432/partnerctl?sslmode=verify-full"
    secrets = {"partnerctl-postgresql/url": url, "partnerctl-postgresql/password": "from-the-secret"}
    (binding,) = kind("RoleBinding")
    bound = {subject["name"] for subject in binding["subjects"] if subject["kind"] == "ServiceAccount"}
    for component, deployment in deployments().items():
        for container in partnerctl_containers(deployment):
            state = expand(container, secrets)["PARTNERCTL_STATE"]
            libpq, options = split_options(state)
            assert libpq == url, (component, container["name"])
            mirrors = container is main_container(deployment) and component not in ("gateway", "console")
            assert options == ({"mirror": "kubernetes"} if mirrors else {}), (component, container["name"])
            if mirrors:  # writing PartnerIntegrations and Events needs the Role
                assert pod(deployment)["serviceAccountName"] in bound, component
                assert pod(deployment)["automountServiceAccountToken"] is True, component


# --- NetworkPolicies -----------------------------------------------------------------------------------


def policy_ports(rules: list[dict[str, Any]]) -> set[int]:
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def test_network_policies_limit_who_reaches_partnerctl_and_where_it_connects() -> None:
    policies = kind("NetworkPolicy")
    assert all(policy["apiVersion"] == "networking.k8s.io/v1" for policy in policies)
    http_ports = {component: reachable_ports(deployment) for component, deployment in deployments().items()}
    for component, deployment in deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        applying = [policy for policy in policies if selects(policy["spec"]["podSelector"], labels)]
        assert applying, f"no NetworkPolicy selects the {component} pods"
        assert all(set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} for policy in applying)
        ingress = [rule for policy in applying for rule in policy["spec"].get("ingress", [])]
        egress = [rule for policy in applying for rule in policy["spec"].get("egress", [])]
        assert policy_ports(ingress) == http_ports[component], component  # its own ports, no others
        assert all(set(rule) == {"ports"} for rule in ingress)
        assert {53, 5432, 8200} <= policy_ports(egress) <= {53, 5432, 8200, 443, 6443}, component
        assert all(rule.get("ports") for rule in egress), "an egress rule without ports allows every port"
        if component == "gateway":  # no Kubernetes API, no webhooks
            assert policy_ports(egress) == {53, 5432, 8200}
        if component == "console":  # and the identity provider over https, for its proxy
            assert policy_ports(egress) == {53, 5432, 8200, 443}
    assert http_ports["gateway"] == {8080} and http_ports["dispatcher"] == {9090} == http_ports["reconciler"]
    assert http_ports["console"] == {4180}  # the proxy; the console's own port is for the kubelet's probes


def test_the_database_is_reachable_from_partnerctl_pods_only() -> None:
    """The labels of base's policy and of deploy/kind's PostgreSQL agree, and only partnerctl pods match."""
    (database,) = [d for d in kind("Deployment", load(KIND)) if d["metadata"]["name"] == "postgresql"]
    database_labels = database["spec"]["template"]["metadata"]["labels"]
    # One policy selects it: this one, not one of partnerctl's own (which would limit its ingress to theirs).
    guarding = [policy for policy in kind("NetworkPolicy") if selects(policy["spec"]["podSelector"], database_labels)]
    assert len(guarding) == 1 and guarding[0]["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = guarding[0]["spec"]["ingress"]
    assert policy_ports([rule]) == {5432}
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}
    for deployment in deployments().values():
        assert selects(source["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    for other in kind("Deployment", load(KIND)):  # not the database itself, not Vault
        assert not selects(source["podSelector"], other["spec"]["template"]["metadata"]["labels"])
    assert {port["containerPort"] for port in main_container(database)["ports"]} == {5432}


# --- RBAC ----------------------------------------------------------------------------------------------


def test_the_gateway_has_an_identity_of_its_own_bound_to_nothing() -> None:
    service_accounts = {account["metadata"]["name"] for account in kind("ServiceAccount")}
    gateway = pod(deployments()["gateway"])["serviceAccountName"]
    assert gateway in service_accounts and gateway != "partnerctl"
    subjects = {subject["name"] for binding in kind("RoleBinding") + kind("ClusterRoleBinding")
                for subject in binding["subjects"]}  # fmt: skip
    assert gateway not in subjects
    assert {pod(d)["serviceAccountName"] for c, d in deployments().items()
            if c not in ("gateway", "console")} == {"partnerctl"}  # fmt: skip
    assert "role=partnerctl-gateway" in next(iter(kind("ConfigMap")))["data"]["gatewaySecrets"]


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str | None) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )  # fmt: skip


VERBS = {"GET": "get", "LIST": "list", "WATCH": "watch", "POST": "create", "PUT": "update", "DELETE": "delete"}
GROUPS = {"partnerintegrations": "partners.scp.dev", "leases": "coordination.k8s.io", "events": ""}


def assert_the_role_allows(requests: list[str]) -> None:
    (role,) = kind("Role")
    for request in requests:
        method, resource = request.split()
        name = "partnerctl-leader" if resource == "leases" and method != "POST" else None
        assert allowed(role["rules"], VERBS[method], GROUPS[resource.split("/")[0]], resource, name), request


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
    assert_the_role_allows(list(cluster.fake.requests))


@pytest.mark.parametrize("cluster", ["fake"], indirect=True)
def test_the_role_allows_what_the_postgresql_mirror_does(
    postgres_url: str, cluster: FakeCluster, git_repo: GitPartnerRepo, tmp_path: Path,
    receiver: tuple[HttpRecorder, str],
) -> None:  # fmt: skip
    state = f"{postgres_url}{'&' if '?' in postgres_url else '?'}mirror=kubernetes://{cluster.namespace}"
    installation = Installation(git_repo, tmp_path / "home", extra=("--state", state, "--dev-allow-loopback-webhooks"))
    installation.repo.write_partners(receiver[1], "acme-bank")
    installation.repo.commit("Onboard ACME")
    installation.apply()
    installation.run("credentials", "rotate", ACME)
    mirrored = [item["metadata"]["name"] for item in cluster.items("partnerintegrations")]
    assert mirrored == ["ministry-social-affairs.acme-bank"]
    assert cluster.requests("POST", "partnerintegrations") and cluster.requests("PUT", "partnerintegrations/status")
    assert cluster.requests("POST", "events")
    assert_the_role_allows(list(cluster.fake.requests))


# --- the gateway's identity suffices -------------------------------------------------------------------


def test_a_gateway_with_its_own_vault_policy_and_an_empty_home_serves_what_the_reconciler_issued(
    postgres_url: str, vault: VaultSpace, git_repo: GitPartnerRepo, tmp_path: Path,
    receiver: tuple[HttpRecorder, str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """As deployed: the reconciler and the gateway in pods of their own, sharing only PostgreSQL and Vault;
    the gateway logs in with deploy/vault/partnerctl-gateway-policy.hcl alone (its KV paths moved to this
    test's prefix)."""
    reconciler = Installation(git_repo, tmp_path / "reconciler", extra=(
        "--state", postgres_url, "--secrets", vault.url, "--dev-allow-loopback-webhooks"))  # fmt: skip
    reconciler.onboard(hooks=receiver[1])
    delivered = reconciler.pick_up_wrapped(ACME)

    policy = (DEPLOY / "vault" / "partnerctl-gateway-policy.hcl").read_text()
    moved = re.sub(r'"secret/(data|metadata)/scp-partners(?=[/"])', rf'"secret/\1/{vault.prefix}', policy)
    assert moved.count(vault.prefix) == policy.count('"secret/') > 0
    name = f"partnerctl-gateway-{vault.prefix.rsplit('-', 1)[-1]}"
    vault.server.client().sys.create_or_update_policy(name, moved)
    monkeypatch.setenv("VAULT_TOKEN", vault.server.token(name))
    # Every audited credential event is past the trimming threshold: the gateway's records must not try to
    # trim Vault's outbox (its policy may not write there) or fail when refused.
    monkeypatch.setattr("reconciler.backends.vault.store.OUTBOX_KEEP", 0)
    app = apps.gateway(tmp_path / "gateway", state=postgres_url, secrets=vault.url, cache_seconds=5)
    server = UvicornThread(app)
    try:
        issued = apps.token_for(server.url, delivered)
        assert issued.status_code == 200, issued.text
        bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        ping = httpx.get(f"{server.url}/v1/ping", headers=bearer)
        assert ping.status_code == 200, ping.text
    finally:
        server.stop()
        app.close()
        app.stores.close()
    assert not (tmp_path / "gateway").exists() or not any(path.is_file() for path in (tmp_path / "gateway").rglob("*"))
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    assert reconciler.status(ACME)[ACME]["phase"] == "ACTIVE"  # the handshake the gateway recorded


# --- the console, behind its sign-in proxy -------------------------------------------------------------


def arguments(container: dict[str, Any]) -> dict[str, str]:
    """``--name=value`` (or a bare ``--flag``, as "true") of a container's args."""
    found = {}
    for argument in container.get("args", []):
        name, _, value = argument.partition("=")
        found[name] = value if value else "true"
    return found


def test_the_console_is_reachable_only_through_its_oauth2_proxy() -> None:
    console = deployments()["console"]
    main, proxy = main_container(console), sidecar(console)
    assert proxy is not None and [c["name"] for c in pod(console)["containers"]] == ["console", "oauth2-proxy"]
    assert main["args"][:2] == ["console", "serve"]
    served = arguments(main)
    # X-Forwarded-Email is believed from the pod's loopback only: from the proxy beside it, from nobody else.
    assert [arg for arg in main["args"] if arg.startswith("--trusted-proxy")] == ["--trusted-proxy=127.0.0.1/32"]
    assert served["--host"] == "0.0.0.0"  # for the kubelet's probes; an unproxied request is nobody
    options = arguments(proxy)
    assert options["--upstream"] == f"http://127.0.0.1:{served['--port']}"
    assert options["--http-address"] == "0.0.0.0:4180"
    assert options["--provider"] == "oidc" and options["--email-domain"] == "*"
    assert options["--reverse-proxy"] == "true" and options.get("--pass-user-headers", "true") == "true"
    assert re.fullmatch(rf"{re.escape(PROXY_IMAGE)}:v\d+\.\d+\.\d+", proxy["image"]), "a pinned release"
    # The Service and the NetworkPolicy lead to the proxy's port alone, never to the console's.
    (service,) = [s for s in kind("Service") if s["metadata"]["name"] == "partnerctl-console"]
    ports = {port["name"]: port["containerPort"] for port in proxy["ports"]}
    assert [ports[port["targetPort"]] for port in service["spec"]["ports"]] == [4180]
    console_port = int(served["--port"])
    assert {port["containerPort"] for port in main["ports"]} == {console_port} and console_port != 4180
    for other in kind("Service"):
        assert all(port["targetPort"] not in {p["name"] for p in main["ports"]} | {console_port}
                   for port in other["spec"]["ports"]), other["metadata"]["name"]  # fmt: skip
    assert reachable_ports(console) == {4180}
    # Both containers are probed: the console on /healthz (no sign-in), the proxy on its own endpoints.
    assert main["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "console"}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}


def test_the_console_proxy_takes_its_secrets_from_a_secret_created_out_of_band() -> None:
    proxy = sidecar(deployments()["console"])
    assert proxy is not None
    env = environment(proxy)
    for key in ("client-id", "client-secret", "cookie-secret"):
        item = env[f"OAUTH2_PROXY_{key.upper().replace('-', '_')}"]
        assert "value" not in item
        assert item["valueFrom"]["secretKeyRef"] == {"name": "partnerctl-console-oauth2-proxy", "key": key}
    assert not any(re.match(r"--(client-secret|cookie-secret|client-id)\b", arg) for arg in proxy["args"])
    assert not kind("Secret") and not kind("Secret", load(KIND))
    for item in proxy["env"]:
        if "SECRET" in item["name"]:
            assert "secretKeyRef" in item["valueFrom"], item
    # The issuer and the redirect URL are placeholders in the ConfigMap, edited before applying.
    (config,) = kind("ConfigMap")
    assert env["OAUTH2_PROXY_OIDC_ISSUER_URL"]["valueFrom"]["configMapKeyRef"]["key"] in config["data"]
    assert config["data"]["consoleIssuerUrl"].startswith("https://")
    assert config["data"]["consoleRedirectUrl"].endswith("/oauth2/callback")


def test_every_configuration_key_a_container_needs_is_in_the_configmap() -> None:
    """base and deploy/kind (whose patch replaces the ConfigMap's data as a whole)."""
    for docs in (documents(), documents() + load(KIND)):
        (config,) = [c for c in kind("ConfigMap", docs) if c["metadata"]["name"] == "partnerctl"]
        data = config["data"]
        if docs is not documents():  # the overlay's data replaces base's
            (patch,) = [p for p in yaml.safe_load((KIND / "kustomization.yaml").read_text())["patches"]
                        if p["target"] == {"kind": "ConfigMap", "name": "partnerctl"}]  # fmt: skip
            data = yaml.safe_load(patch["patch"])[0]["value"]
        for deployment in kind("Deployment", docs):
            for container in every_container(deployment):
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("configMapKeyRef")
                    if ref and ref["name"] == "partnerctl" and not ref.get("optional"):
                        assert ref["key"] in data, (deployment["metadata"]["name"], container["name"], ref["key"])


def test_the_console_has_an_identity_of_its_own_bound_to_nothing() -> None:
    console = pod(deployments()["console"])
    account = console["serviceAccountName"]
    assert account == "partnerctl-console"
    assert account in {service_account["metadata"]["name"] for service_account in kind("ServiceAccount")}
    subjects = {subject["name"] for binding in kind("RoleBinding") + kind("ClusterRoleBinding")
                for subject in binding["subjects"]}  # fmt: skip
    assert account not in subjects
    assert "role=partnerctl-console" in next(iter(kind("ConfigMap")))["data"]["consoleSecrets"]
    secrets = environment(main_container(deployments()["console"]))["PARTNERCTL_SECRETS"]
    assert secrets["valueFrom"] == {"configMapKeyRef": {"name": "partnerctl", "key": "consoleSecrets"}}
    policy = (DEPLOY / "vault" / "partnerctl-console-policy.hcl").read_text()
    capabilities = set(re.findall(r'"(\w+)"', " ".join(re.findall(r"capabilities = \[(.*?)\]", policy))))
    assert capabilities == {"read", "list", "update"}  # update: Transit HMAC only
    updated = re.findall(r'path "([^"]+)" \{\s*capabilities = \["update"\]', policy)
    assert all(path.startswith("transit/hmac/scp-partners") for path in updated) and len(updated) == 3
    paths = re.findall(r'path "([^"]+)"', policy)
    assert not [path for path in paths if re.search("crypt|_installation|_wraps|sys/|auth/", path)], paths


def test_the_console_vault_policy_reads_the_evidence_and_no_secret(
    vault: VaultSpace, git_repo: GitPartnerRepo, tmp_path: Path, receiver: tuple[HttpRecorder, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With deploy/vault/partnerctl-console-policy.hcl alone, the report the console shows builds from Vault
    (credential evidence included), and the secrets kept there stay ciphertext to it."""
    from reconciler import clock
    from reconciler.backends import open_stores
    from reconciler.engine.report import build_report
    from reconciler.errors import ReconcilerError

    reconciler = Installation(git_repo, tmp_path / "reconciler", extra=(
        "--secrets", vault.url, "--dev-allow-loopback-webhooks"))  # fmt: skip
    reconciler.onboard(hooks=receiver[1])

    policy = (DEPLOY / "vault" / "partnerctl-console-policy.hcl").read_text()
    moved = re.sub(r'"secret/(data|metadata)/scp-partners(?=[/"])', rf'"secret/\1/{vault.prefix}', policy)
    assert moved.count(vault.prefix) == policy.count('"secret/') > 0
    name = f"partnerctl-console-{vault.prefix.rsplit('-', 1)[-1]}"
    vault.server.client().sys.create_or_update_policy(name, moved)
    monkeypatch.setenv("VAULT_TOKEN", vault.server.token(name))
    stores = open_stores(home=tmp_path / "reconciler", secrets=vault.url, secret_cache_seconds=5.0)
    try:
        document = build_report(stores, revision=None, now=clock.now())
        (partner,) = document["partners"]
        assert partner["partner"] == ACME and partner["credential"]["clientId"]
        hooks = stores.secrets.webhook_secret_names()
        assert hooks[ACME]
        with pytest.raises(ReconcilerError):  # Transit decryption is not the console's
            stores.secrets.webhook_secret(ACME, sorted(hooks[ACME])[0])
    finally:
        stores.close()
