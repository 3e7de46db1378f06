"""Two ``partnerctl run --leader-elect`` processes against one Kubernetes API: one leader, failover
when the leader is killed, no double apply, and a leader that loses its Lease stops at once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.engine import Installation
from tests.support.processes import LEASE_SECONDS, Runner, eventually
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder


@pytest.fixture
def runners(cluster_installation: Installation) -> Iterator[list[Runner]]:
    started = [Runner(cluster_installation, "pod-a"), Runner(cluster_installation, "pod-b")]
    yield started
    for runner in started:
        runner.kill()


def holder(cluster: Cluster) -> str | None:
    lease = cluster.get("leases", "partnerctl-leader")
    return lease["spec"].get("holderIdentity") if lease else None


def applied(cluster: Cluster, name: str) -> bool:
    found = cluster.get("partnerintegrations", f"{TENANT}.{name}")
    return bool(found and found.get("status"))


def test_one_leader_applies_and_a_standby_takes_over_when_it_dies(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str],
    runners: list[Runner],
) -> None:  # fmt: skip
    cluster_installation.repo.write_partners(receiver[1], "acme-bank")
    cluster_installation.repo.commit("Onboard ACME")

    eventually(lambda: applied(cluster, "acme-bank"), "the first partner to be applied")
    leader = next(r for r in runners if r.identity == holder(cluster))
    standby = next(r for r in runners if r is not leader)
    assert leader.said("acquired the lease") and not standby.said("acquired the lease")
    time.sleep(LEASE_SECONDS)  # a few more rounds: the standby still only stands by
    assert holder(cluster) == leader.identity and not standby.said("acquired the lease")

    leader.process.kill()  # no chance to release the Lease
    leader.process.wait()
    cluster_installation.repo.write_partners(receiver[1], "beta-ngo")
    cluster_installation.repo.commit("Onboard Beta")
    try:
        took = eventually(lambda: standby.said("acquired the lease"), "the standby to take over")
    except AssertionError as error:
        raise AssertionError(f"{error}; the standby's last lines: {standby.lines[-6:]}") from None
    assert took < LEASE_SECONDS + 5, "the standby took over within the lease duration (plus its retry period)"
    eventually(lambda: applied(cluster, "beta-ngo"), "the new leader to apply the next commit")
    lease = cluster.get("leases", "partnerctl-leader")
    assert lease is not None and lease["spec"]["holderIdentity"] == standby.identity
    assert lease["spec"]["leaseTransitions"] >= 1

    assert standby.stop() == 0
    issued = Counter(e["partner"] for e in cluster_installation.audit() if e["event"] == "credential.issued")
    assert issued == Counter({f"{TENANT}/acme-bank": 1, f"{TENANT}/beta-ngo": 1}), "nothing applied twice"
    assert holder(cluster) in (None, ""), "a leader that exits releases the Lease"


def test_a_leader_that_loses_its_lease_stops_applying(
    cluster_installation: Installation, cluster: Cluster, receiver: tuple[HttpRecorder, str],
    runners: list[Runner],
) -> None:  # fmt: skip
    for runner in runners[1:]:
        runner.process.kill()
    only = runners[0]
    eventually(lambda: only.said("acquired the lease"), "the leader to start")
    def taken_elsewhere(lease: dict[str, Any]) -> None:
        # Another holder, renewed just now: as if the network had cut us off for a while.
        lease["spec"]["holderIdentity"] = "pod-elsewhere"
        lease["spec"]["leaseDurationSeconds"] = 3600
        lease["spec"]["renewTime"] = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    cluster.edit("leases", "partnerctl-leader", taken_elsewhere)

    eventually(lambda: only.said("lost the lease"), "the leader to notice", timeout=LEASE_SECONDS + 5)
    cluster_installation.repo.write_partners(receiver[1], "acme-bank")
    cluster_installation.repo.commit("Onboard ACME")
    time.sleep(3)  # three intervals: a leader would have applied by now
    assert not applied(cluster, "acme-bank")
    assert only.stop() == 0
