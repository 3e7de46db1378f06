"""PostgreSQL as the state, PartnerIntegration objects as its mirror (``--state postgresql://…?mirror=…``):
``kubectl get pi`` and Events keep working, PostgreSQL stays the truth, and a broken mirror never fails
an apply."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.engine import Installation
from tests.support.repo import PARTNER, TENANT, edit

OBJECT = f"{TENANT}.acme-bank"


def mirrored(installation: Installation, postgres_url: str, namespace: str) -> Installation:
    separator = "&" if "?" in postgres_url else "?"
    state = f"{postgres_url}{separator}mirror=kubernetes://{namespace}"
    return Installation(installation.repo, installation.home, extra=("--state", state, "--dev-allow-loopback-webhooks"))


def test_records_and_events_are_mirrored_to_partnerintegrations(
    postgres_installation: Installation, postgres_url: str, cluster: Cluster
) -> None:
    installation = mirrored(postgres_installation, postgres_url, cluster.namespace)
    installation.onboard()
    found = cluster.get("partnerintegrations", OBJECT)
    assert found is not None and found["status"]["phase"] == "AWAITING_HANDSHAKE"
    assert found["status"]["record"] == _record(installation)
    reasons = {event["reason"] for event in cluster.items("events")}
    assert {"CredentialIssued", "PartnerRegistered"} <= reasons

    installation.repo.write_partner(edit(PARTNER, "suspended: false", "suspended: true"))
    installation.repo.commit("Suspend ACME")
    installation.apply()
    assert cluster.get("partnerintegrations", OBJECT)["status"]["phase"] == "SUSPENDED"  # type: ignore[index]


def test_postgresql_stays_the_truth_over_a_hand_edited_object(
    postgres_installation: Installation, postgres_url: str, cluster: Cluster
) -> None:
    installation = mirrored(postgres_installation, postgres_url, cluster.namespace)
    installation.onboard()

    def suspend(stored: dict[str, Any]) -> None:
        stored["status"]["record"]["phase"] = "SUSPENDED"

    cluster.edit("partnerintegrations", OBJECT, suspend, status=True)
    assert installation.status()[f"{TENANT}/acme-bank"]["phase"] == "AWAITING_HANDSHAKE"
    assert installation.actions() == []


def test_a_refused_mirror_never_fails_an_apply(
    postgres_installation: Installation, postgres_url: str, cluster: Cluster
) -> None:
    if not cluster.real:
        pytest.skip("the fake API server has no RBAC: it admits any namespace")
    installation = mirrored(postgres_installation, postgres_url, "kube-system")  # partnerctl's Role is not there
    installation.onboard()  # asserts exit 0
    assert installation.status()[f"{TENANT}/acme-bank"]["phase"] == "AWAITING_HANDSHAKE"


def _record(installation: Installation) -> dict[str, Any]:
    from reconciler.backends import open_stores

    state = installation.extra[1]
    with open_stores(home=installation.home, state=state.split("?")[0]) as stores:
        record = stores.partners.partner(f"{TENANT}/acme-bank")
        assert record is not None
        return record.to_json()
