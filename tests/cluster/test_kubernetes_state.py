"""Partner records as PartnerIntegration objects, through the real kubernetes client and a local API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.backends.kubernetes.state import KubernetesPartners
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Phase
from tests.support import apps
from tests.support.cluster import Cluster, FakeCluster
from tests.support.engine import Installation
from tests.support.leaks import assert_nowhere
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder, UvicornThread

ACME = f"{TENANT}/acme-bank"
NAME = f"{TENANT}.acme-bank"


def test_applied_partners_are_partner_integrations_with_status(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str]
) -> None:
    cluster_installation.onboard(hooks=receiver[1])

    found = cluster.get("partnerintegrations", NAME)
    assert found is not None
    assert found["spec"] == {"tenant": TENANT, "partner": "acme-bank"}
    assert found["metadata"]["labels"]["partners.scp.dev/tenant"] == TENANT
    status = found["status"]
    local = cluster_installation.status(ACME)[ACME]
    assert (status["phase"], status["health"]) == (local["phase"], local["health"]) == ("AWAITING_HANDSHAKE", "UNKNOWN")
    assert status["appliedRevision"] == cluster_installation.repo.git.head.commit.hexsha
    assert {c["type"] for c in status["conditions"]} >= {"Approved", "CredentialsIssued", "WebhooksRegistered"}
    assert status["webhooks"] == [{"name": "payment-events", "state": "active", "consecutiveFailures": 0}]
    assert cluster_installation.plan()["actions"] == [], "the records read back from the API"
    assert cluster.requests("PUT", "partnerintegrations/status") >= 1


@pytest.mark.parametrize("cluster", ["fake"], indirect=True)  # conflicts on demand: the fake's
def test_a_conflicting_write_is_retried_on_a_fresh_read(
    cluster_installation: Installation, cluster: FakeCluster, receiver: tuple[HttpRecorder, str]
) -> None:
    cluster_installation.onboard(hooks=receiver[1])
    before = cluster.requests("PUT", "partnerintegrations/status")
    cluster.fake.conflicts = 2  # two writers get in first
    cluster_installation.run("credentials", "rotate", ACME)
    cluster_installation.repo.write_partners(receiver[1], "acme-bank")
    text = cluster_installation.repo.root / "partners" / TENANT / "acme-bank.yaml"
    text.write_text(text.read_text().replace("suspended: false", "suspended: true"))
    cluster_installation.repo.commit("Suspend ACME")
    result = cluster_installation.apply()

    assert all(item["ok"] for item in result["results"]), result
    assert cluster.requests("PUT", "partnerintegrations/status") >= before + 3, "409s were answered with retries"
    found = cluster.get("partnerintegrations", NAME)
    assert found is not None and found["status"]["phase"] == "SUSPENDED"


def test_applied_actions_and_log01_become_kubernetes_events(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str]
) -> None:
    cluster_installation.onboard(hooks=receiver[1])
    events = cluster.items("events")
    reasons = {event["reason"] for event in events}
    assert {"PartnerRegistered", "CredentialIssued", "WebhookRegistered"} <= reasons
    assert all(event["involvedObject"]["kind"] == "PartnerIntegration" for event in events)
    assert all(event["involvedObject"]["name"] == NAME for event in events)

    receiver[0].status = 503  # the partner's endpoint starts failing
    for _ in range(5):
        cluster_installation.run("apply", "--check-interval", "0")
    warnings = [e for e in cluster.items("events") if e["type"] == "Warning"]
    assert {"WebhookFailing", "WebhookDeactivated"} <= {e["reason"] for e in warnings}
    assert any("LOG-01" in e["message"] for e in warnings)


def test_a_missing_kubeconfig_is_a_clear_error(installation: Installation) -> None:
    result = installation.run("--state", "kubernetes://scp", "status")
    assert result.exit_code == 2
    assert "KUBECONFIG" in result.stderr and "Traceback" not in result.stderr


def test_no_secret_reaches_the_kubernetes_api(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str]
) -> None:
    cluster_installation.onboard(hooks=receiver[1])
    delivered = cluster_installation.deliver(ACME)
    cluster_installation.run("credentials", "rotate", ACME)
    rotated = cluster_installation.deliver(ACME)["client_secret"]
    cluster_installation.apply()
    secrets = [delivered["client_secret"], rotated, *delivered["webhook_secrets"].values()]
    everything = {plural: json.dumps(cluster.items(plural)).encode() for plural in ("partnerintegrations", "events")}
    assert_nowhere(secrets, everything)


def test_the_gateway_asks_the_api_server_at_most_once_per_window(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str]
) -> None:
    cluster_installation.onboard(hooks=receiver[1])
    delivered = cluster_installation.deliver(ACME)
    app = apps.gateway(cluster_installation.home, state=f"kubernetes://{cluster.namespace}", cache_seconds=60)
    server = UvicornThread(app)
    try:
        lists_before = cluster.requests("LIST", "partnerintegrations")
        for _ in range(20):
            answer = httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                                auth=(delivered["client_id"], delivered["client_secret"]))  # fmt: skip
            assert answer.status_code == 200, answer.text
        assert cluster.requests("LIST", "partnerintegrations") - lists_before <= 1, "20 requests, one change check"
    finally:
        server.stop()
        app.stores.close()


def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_long_running_store_watches_for_changes_instead_of_asking(cluster: Cluster) -> None:
    watching, elsewhere = KubernetesPartners(cluster.namespace, watch=True), KubernetesPartners(cluster.namespace)
    try:
        eventually(lambda: (watching.version() or "").startswith("watch:"), "the watch to start")
        lists = cluster.requests("LIST", "partnerintegrations")
        before = watching.version()
        elsewhere.save([PartnerRecord(key=ACME, phase=Phase.ACTIVE)])  # another process: the reconciler
        eventually(lambda: watching.version() != before, "the watch to see another process's write")
        seen = watching.version()

        def suspend(stored: dict[str, Any]) -> None:
            stored["status"]["record"]["suspended"] = True

        cluster.edit("partnerintegrations", NAME, suspend, status=True)  # by hand
        eventually(lambda: watching.version() != seen, "the watch to see a hand edit")
        assert cluster.requests("LIST", "partnerintegrations") == lists, "no LIST: the watch told"
        own = watching.version()
        watching.save([PartnerRecord(key=ACME, phase=Phase.SUSPENDED)])
        assert watching.version() != own, "its own write moves the version at once"
    finally:
        watching.close()
        elsewhere.close()
