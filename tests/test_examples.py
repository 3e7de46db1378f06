"""The example content reads like a real partner repository and is valid."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from reconciler.manifests.models import IntegrationPartner, ScopeCatalog, TenantPolicy
from reconciler.manifests.validation import Validator
from reconciler.manifests.worktree import WorkingTree
from tests.conftest import PROJECT_ROOT
from tests.support.corpus import load
from tests.support.repo import TODAY


def test_catalog_covers_the_platform_domains_and_all_classifications() -> None:
    catalog = ScopeCatalog.model_validate(load(PROJECT_ROOT / "policies/scopes.yaml"))
    assert len(catalog.spec.scopes) >= 8
    assert {scope.classification for scope in catalog.spec.scopes} == {"anonymous", "pseudonymous", "personal"}
    domains = {scope.name.split(":")[0] for scope in catalog.spec.scopes}
    assert {"beneficiary", "enrolment", "payment", "grievance"} <= domains
    assert len(catalog.spec.events) >= 4
    assert all(set(event.fields.values()) for event in catalog.spec.events)


def test_two_tenants_and_partners_of_different_types() -> None:
    policies = [
        TenantPolicy.model_validate(load(path))
        for path in (PROJECT_ROOT / "policies").glob("*.yaml")
        if path.name != "scopes.yaml"
    ]
    assert len(policies) >= 2
    partners = [IntegrationPartner.model_validate(load(path)) for path in PROJECT_ROOT.glob("partners/*/*.yaml")]
    assert len(partners) >= 5
    types = Counter(partner.spec.organization.type for partner in partners)
    assert {"ngo", "bank", "government"} <= set(types)
    assert {partner.metadata.tenant for partner in partners} == {policy.metadata.name for policy in policies}
    assert any(partner.spec.webhooks for partner in partners)


def test_the_private_key_jwt_example_is_valid_against_this_repository_policies() -> None:
    """examples/ holds manifests to copy: checked as files from outside, against the catalog and tenant policy."""
    path = PROJECT_ROOT / "examples/private-key-jwt-partner.yaml"
    validator = Validator(WorkingTree(PROJECT_ROOT), today=datetime.fromisoformat(TODAY).date())
    report = validator.validate([], outside=[(str(path), path.read_bytes())])
    assert report.to_json() == {"valid": True, "files": 1, "violations": []}
    partner = IntegrationPartner.model_validate(load(path))
    assert partner.spec.auth.client_authentication == "private_key_jwt"
    assert partner.spec.auth.jwks is not None
    assert [(key.kty, key.crv, key.alg) for key in partner.spec.auth.jwks.keys] == [("EC", "P-256", "ES256")]
