"""The planner specified by its properties (DESIGN §5), over generated desired and live states:

- deterministic: the same inputs give a byte-identical JSON plan, whatever order they were built in;
- convergent: carrying out a plan's actions on the live state leaves nothing to do.

Live states are real SQLite and local secret stores, reached by applying an earlier desired state and
then disturbing it the ways the world does: time passing, a hand-deleted credential or signing secret."""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.backends import open_stores
from reconciler.engine.desired import DesiredState
from reconciler.engine.executor import Executor
from reconciler.engine.journal import Journal
from reconciler.engine.plan import LiveState, Plan, make_plan
from reconciler.stores import Stores
from tests.support.desired import START, Version, desired_of

CHECKS = timedelta(minutes=5)
SCOPES = ["beneficiary:read:anonymous", "payment:status:read", "payment:status:update"]
NAMES = ["acme-bank", "beta-ngo", "gamma-fund", "delta-office"]


versions = st.builds(
    Version,
    name=st.sampled_from(NAMES),
    scopes=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True).map(tuple),
    hooks=st.lists(
        st.tuples(st.sampled_from(["payments", "alerts"]), st.sampled_from(["https://hooks.a.example/x",
                                                                           "https://hooks.b.example/y"])),
        max_size=2, unique_by=lambda hook: hook[0],
    ).map(tuple),
    suspended=st.booleans(),
)  # fmt: skip
desired_states = st.lists(versions, max_size=4, unique_by=lambda version: version.name)


def deletions(stores: Stores, after: list[Version]) -> tuple[str, ...]:
    """Approved deletions, as the desired state names them: files gone whose partner is still live."""
    wanted = {version.name for version in after}
    return tuple(key.split("/", 1)[1] for key, record in sorted(stores.partners.partners().items())
                 if not record.decommissioned and key.split("/", 1)[1] not in wanted)  # fmt: skip


def live_of(stores: Stores) -> LiveState:
    return LiveState(stores.partners.partners(), stores.secrets.live_credentials(),
                     stores.secrets.webhook_secret_names())  # fmt: skip


def apply(stores: Stores, desired: DesiredState, now: datetime) -> Plan:
    live = live_of(stores)
    plan = make_plan(desired, live, now=now, check_interval=CHECKS)
    results = Executor(stores, Journal(stores, actor="test"), now=now).run(plan, desired, live.records)
    assert all(result.ok for result in results), [result for result in results if not result.ok]
    return plan


@contextmanager
def installation() -> Iterator[tuple[Stores, Path]]:
    with tempfile.TemporaryDirectory(prefix="partnerctl-plan-") as folder:
        stores = open_stores(home=Path(folder))
        try:
            yield stores, Path(folder)
        finally:
            stores.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=desired_states, after=desired_states, days=st.sampled_from([0, 1, 91, 95]),
       disturb=st.sampled_from(["nothing", "credential deleted", "signing secret deleted"]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_applying_a_plan_leaves_nothing_to_do(
    before: list[Version], after: list[Version], days: int, disturb: str, seed: int
) -> None:
    with installation() as (stores, home):
        apply(stores, desired_of(before, "a" * 40), START)
        keys = sorted(stores.partners.partners())
        if keys and disturb != "nothing":
            victim = random.Random(seed).choice(keys)
            table = "credentials" if disturb == "credential deleted" else "webhook_secrets"
            with sqlite3.connect(home / "secrets" / "secrets.db") as db:  # by hand, behind partnerctl's back
                db.execute(f"DELETE FROM {table} WHERE partner = ?", (victim,))
        now = START + timedelta(days=days)
        apply(stores, desired_of(after, "b" * 40, deleted=deletions(stores, after)), now)
        desired = desired_of(after, "b" * 40, deleted=deletions(stores, after))
        again = make_plan(desired, live_of(stores), now=now, check_interval=CHECKS)
        assert again.actions == [], [action.to_json() for action in again.actions]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=desired_states, after=desired_states, days=st.sampled_from([0, 91]), seed=st.integers(0, 2**16))
def test_the_same_inputs_give_the_same_plan_byte_for_byte(
    before: list[Version], after: list[Version], days: int, seed: int
) -> None:
    with installation() as (stores, _):
        apply(stores, desired_of(before, "a" * 40), START)
        live = live_of(stores)
        now = START + timedelta(days=days)
        first = make_plan(desired_of(after, "b" * 40), live, now=now, check_interval=CHECKS)
        shuffled = list(after)
        random.Random(seed).shuffle(shuffled)
        records = list(live.records.items())
        random.Random(seed).shuffle(records)
        second = make_plan(desired_of(shuffled, "b" * 40), LiveState(dict(records), live.credentials,
                                                                      live.webhook_secrets),
                           now=now, check_interval=CHECKS)  # fmt: skip
        assert json.dumps(first.to_json()) == json.dumps(second.to_json())
