"""The JSON Schemas in schemas/ and the pydantic models accept exactly the same documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.manifests.models import MODELS
from tests.conftest import PROJECT_ROOT
from tests.support.corpus import PROBES, auth_cases, load, mutations, nodes, replace, tenant_policy_cases

SCHEMA_FILES = {
    "IntegrationPartner": "integration-partner.schema.json",
    "ScopeCatalog": "scope-catalog.schema.json",
    "TenantPolicy": "tenant-policy.schema.json",
    "TrustRoot": "trust-root.schema.json",
}
OUTPUT_SCHEMAS = {"report.schema.json"}  # of what partnerctl prints, not of a manifest kind
EXAMPLES = sorted(
    [
        *PROJECT_ROOT.glob("partners/*/*.yaml"),
        *PROJECT_ROOT.glob("policies/*.yaml"),
        PROJECT_ROOT / "examples/trust-root.yaml",
        PROJECT_ROOT / "examples/private-key-jwt-partner.yaml",
    ]
)


def schema_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((PROJECT_ROOT / "schemas" / SCHEMA_FILES[kind]).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def schema_accepts(kind: str, document: Any) -> bool:
    return schema_validator(kind).is_valid(document)


def model_accepts(kind: str, document: Any) -> bool:
    try:
        MODELS[kind].model_validate(document)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("kind", SCHEMA_FILES)
def test_schema_is_valid_draft_2020_12_with_id_title_and_descriptions(kind: str) -> None:
    schema = json.loads((PROJECT_ROOT / "schemas" / SCHEMA_FILES[kind]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://partners.scp.dev/schemas/v1/")
    assert schema["title"] == kind
    assert schema["description"]
    assert schema["additionalProperties"] is False


def test_every_kind_has_a_schema_and_a_model() -> None:
    assert set(SCHEMA_FILES) == set(MODELS)
    assert {path.name for path in (PROJECT_ROOT / "schemas").glob("*.json")} == {*SCHEMA_FILES.values(),
                                                                               *OUTPUT_SCHEMAS}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_examples_are_accepted_by_both(path: Path) -> None:
    document = load(path)
    kind = document["kind"]
    assert schema_accepts(kind, document)
    assert model_accepts(kind, document)


PKJWT_EXAMPLE = PROJECT_ROOT / "examples/private-key-jwt-partner.yaml"
POLICY_EXAMPLE = PROJECT_ROOT / "policies/ministry-social-affairs.yaml"


def _with_jwks_uri() -> Any:
    document = load(PKJWT_EXAMPLE)
    del document["spec"]["auth"]["jwks"]
    document["spec"]["auth"]["jwksUri"] = "https://keys.statistics-office.example/scp/jwks.json"
    return document


def _policy_with_optional_sections() -> Any:
    document = load(POLICY_EXAMPLE)
    document["spec"]["clientAuthentication"] = ["client_secret", "private_key_jwt"]
    document["spec"]["gateway"] = {"requestsPerMinute": 600, "burst": 100}
    return document


# One document of each kind, chosen for having every optional section (the policy's newer optional
# sections, and the partner's jwksUri, are added to a copy).
MUTATED: dict[str, Any] = {
    "partners/ministry-social-affairs/northbridge-bank.yaml": lambda: load(
        PROJECT_ROOT / "partners/ministry-social-affairs/northbridge-bank.yaml"
    ),
    "examples/private-key-jwt-partner.yaml": lambda: load(PKJWT_EXAMPLE),
    "examples/private-key-jwt-partner.yaml with jwksUri": _with_jwks_uri,
    "policies/scopes.yaml": lambda: load(PROJECT_ROOT / "policies/scopes.yaml"),
    "policies/ministry-social-affairs.yaml": lambda: load(POLICY_EXAMPLE),
    "policies/ministry-social-affairs.yaml with clientAuthentication and gateway": _policy_with_optional_sections,
    "examples/trust-root.yaml": lambda: load(PROJECT_ROOT / "examples/trust-root.yaml"),
}


@pytest.mark.parametrize("name", MUTATED)
def test_schema_and_model_agree_on_every_mutation(name: str) -> None:
    document = MUTATED[name]()
    kind = document["kind"]
    validator = schema_validator(kind)
    disagreements = []
    count = 0
    for description, mutated in mutations(document):
        count += 1
        by_schema = validator.is_valid(mutated)
        if by_schema != model_accepts(kind, mutated):
            disagreements.append(f"{description}: schema says {'valid' if by_schema else 'invalid'}")
    assert count > 100
    assert disagreements == []


def _partner_with_auth(auth: dict[str, Any]) -> Any:
    return replace(load(PKJWT_EXAMPLE), ("spec", "auth"), auth)


@pytest.mark.parametrize(("description", "auth", "valid"), auth_cases(), ids=[case[0] for case in auth_cases()])
def test_client_authentication_shapes_get_the_same_verdict(description: str, auth: dict[str, Any], valid: bool) -> None:
    document = _partner_with_auth(auth)
    assert schema_accepts("IntegrationPartner", document) is valid
    assert model_accepts("IntegrationPartner", document) is valid


@pytest.mark.parametrize(
    ("description", "sections", "valid"), tenant_policy_cases(), ids=[case[0] for case in tenant_policy_cases()]
)
def test_tenant_policy_client_authentication_and_gateway_get_the_same_verdict(
    description: str, sections: dict[str, Any], valid: bool
) -> None:
    document = load(POLICY_EXAMPLE)
    document["spec"].update(sections)
    assert schema_accepts("TenantPolicy", document) is valid
    assert model_accepts("TenantPolicy", document) is valid


def test_mutations_include_both_verdicts() -> None:
    """Guard against a corpus that only ever breaks documents (which would prove little)."""
    document = load(PROJECT_ROOT / "partners/ministry-social-affairs/northbridge-bank.yaml")
    verdicts = {schema_accepts("IntegrationPartner", mutated) for _, mutated in mutations(document)}
    assert verdicts == {True, False}


_leaves = st.one_of(st.sampled_from(PROBES), st.text(max_size=12), st.integers(-3, 400), st.booleans(), st.none())


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_random_multi_point_mutations_get_the_same_verdict(data: st.DataObject) -> None:
    document = load(PROJECT_ROOT / "partners/ministry-social-affairs/open-hands-foundation.yaml")
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        paths = [path for path, _ in nodes(document) if path]
        path = data.draw(st.sampled_from(paths))
        document = replace(document, path, data.draw(_leaves))
    assert schema_accepts("IntegrationPartner", document) == model_accepts("IntegrationPartner", document)
