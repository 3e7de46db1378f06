"""Fixtures of the gateway tests: a second partner beside the onboarded one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Onboarded
from tests.support.repo import TENANT

BETA = f"{TENANT}/beta-ngo"


@pytest.fixture
def beta(onboarded: Onboarded) -> dict[str, Any]:
    """A second partner of the same tenant, onboarded beside ACME (its webhook at ACME's receiver): its
    delivered credentials."""
    repo = onboarded.installation.repo
    acme = (repo.root / f"partners/{TENANT}/acme-bank.yaml").read_text()
    repo.write_partner(acme.replace("acme-bank", "beta-ngo").replace("ACME Bank", "Beta NGO"), name="beta-ngo")
    repo.commit("Onboard Beta NGO")
    onboarded.installation.apply()
    return onboarded.installation.deliver(BETA)
