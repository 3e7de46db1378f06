"""Two ``partnerctl run --leader-elect`` processes on one PostgreSQL database and no cluster: one leader
(an advisory lock), failover when it dies, nothing applied twice, and a leader whose session is cut
stops at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from reconciler.backends.postgresql.schema import LOCK_SPACE, MIGRATION_LOCK
from reconciler.backends.postgresql.state import WRITER_LOCK
from tests.support.engine import Installation
from tests.support.processes import LEASE_SECONDS, Runner, eventually
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder


@pytest.fixture
def runners(postgres_installation: Installation) -> Iterator[list[Runner]]:
    started = [Runner(postgres_installation, "vm-a"), Runner(postgres_installation, "vm-b")]
    yield started
    for runner in started:
        runner.kill()


def applied(installation: Installation, name: str) -> bool:
    return f"{TENANT}/{name}" in installation.status()


def leader_of(runners: list[Runner]) -> Runner:
    eventually(lambda: any(runner.said("acquired the lease") for runner in runners), "a leader")
    (leader,) = [runner for runner in runners if runner.said("acquired the lease")]
    return leader


def test_one_leader_applies_and_a_standby_takes_over_when_it_dies(
    postgres_installation: Installation, receiver: tuple[HttpRecorder, str], runners: list[Runner]
) -> None:
    installation = postgres_installation
    installation.repo.write_partners(receiver[1], "acme-bank")
    installation.repo.commit("Onboard ACME")
    eventually(lambda: applied(installation, "acme-bank"), "the first partner to be applied")
    leader = leader_of(runners)
    standby = next(runner for runner in runners if runner is not leader)
    eventually(lambda: len(leader.lines) > 3, "a few more rounds")
    assert not standby.said("acquired the lease"), "the standby only stands by"

    leader.kill()  # no chance to unlock: the server ends its session, and the lock with it
    installation.repo.write_partners(receiver[1], "beta-ngo")
    installation.repo.commit("Onboard Beta")
    took = eventually(lambda: standby.said("acquired the lease"), "the standby to take over")
    assert took < LEASE_SECONDS + 5
    eventually(lambda: applied(installation, "beta-ngo"), "the new leader to apply the next commit")
    assert standby.stop() == 0
    issued = Counter(e["partner"] for e in installation.audit() if e["event"] == "credential.issued")
    assert issued == Counter({f"{TENANT}/acme-bank": 1, f"{TENANT}/beta-ngo": 1}), "nothing applied twice"


def test_a_leader_whose_session_is_cut_stops_and_the_standby_leads(
    postgres_installation: Installation, postgres_url: str, runners: list[Runner]
) -> None:
    leader = leader_of(runners)
    with psycopg.connect(postgres_url, autocommit=True) as db:  # as a network partition or a failover would
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                   "AND classid = %s AND objid NOT IN (%s, %s)", (LOCK_SPACE, MIGRATION_LOCK, WRITER_LOCK))  # fmt: skip
    eventually(lambda: leader.said("lost the lease"), "the leader to notice", timeout=LEASE_SECONDS + 5)

    def acquisitions() -> int:
        return sum("acquired the lease" in str(line.get("msg")) for runner in runners for line in list(runner.lines))

    eventually(lambda: acquisitions() == 2, "one of them to lead again")
