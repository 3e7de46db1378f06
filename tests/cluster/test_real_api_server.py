"""What only the real Kubernetes API server can tell: RBAC refuses what deploy/base/rbac.yaml does not grant,
deploy/ is accepted by the server itself, and kubectl shows the CRD's printer columns with real values."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.conftest import PROJECT_ROOT, People
from tests.support.cluster import RealCluster
from tests.support.engine import Installation
from tests.support.servers import HttpRecorder
from tests.support.signing import trailers

pytestmark = pytest.mark.parametrize("cluster", ["real"], indirect=True)


def test_a_request_outside_the_role_is_forbidden(cluster: RealCluster) -> None:
    assert cluster.servers.user_kubeconfig is not None
    api = config.new_client_from_config(config_file=str(cluster.servers.user_kubeconfig))
    try:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_secret(cluster.namespace)
        assert refused.value.status == 403
        with pytest.raises(ApiException) as deleting:  # its own objects, but not a verb it was granted
            client.CustomObjectsApi(api).delete_namespaced_custom_object(
                "partners.scp.dev", "v1", cluster.namespace, "partnerintegrations", "anything"
            )
        assert deleting.value.status == 403
    finally:
        api.close()


def test_partnerctl_outside_its_namespace_says_what_to_fix(cluster: RealCluster, installation: Installation) -> None:
    result = installation.run("--state", "kubernetes://kube-system", "plan")  # no Role there
    assert result.exit_code == 1
    assert "403" in result.stderr and "deploy/base/rbac.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_deploy_is_accepted_by_the_api_server(cluster: RealCluster) -> None:
    existing = cluster.servers.kubectl("get", "namespace", "scp", check=False)
    if existing.returncode != 0:
        cluster.servers.kubectl("create", "namespace", "scp")
    for folder in ("deploy", "deploy/kind"):
        done = cluster.servers.kubectl("apply", "--dry-run=server", "-k", str(PROJECT_ROOT / folder), check=False)
        assert done.returncode == 0, done.stderr
        assert "(server dry run)" in done.stdout


def test_kubectl_shows_each_partner_with_the_printer_columns(
    cluster: RealCluster, approved: Installation, people: People, receiver: tuple[HttpRecorder, str]
) -> None:
    installation = Installation(approved.repo, approved.home, approved.trust_root, extra=(
        "--state", f"kubernetes://{cluster.namespace}", "--dev-allow-loopback-webhooks"))  # fmt: skip
    installation.repo.write_partners(receiver[1], "acme-bank", "beta-ngo")
    message = "Onboard ACME and Beta" + trailers(people.alice.email, "DPA-2026-031")
    installation.repo.commit(message, signer=people.alice)
    installation.apply()  # the connectivity check's ping reaches the receiver: a successful sync

    table = cluster.kubectl("get", "partnerintegrations").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "HEALTH", "LAST", "SYNC", "APPROVED", "BY", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"ministry-social-affairs.acme-bank", "ministry-social-affairs.beta-ngo"}
    for name, phase, health, last_sync, approver, age in rows.values():
        assert (phase, health, approver) == ("AWAITING_HANDSHAKE", "UNKNOWN", people.alice.email)
        assert last_sync[-1] in "smhd" and age[-1] in "smhd", (name, last_sync, age)  # durations, so real times
    assert len(cluster.kubectl("get", "pi", "-o", "name").split()) == 2  # the short name works too
