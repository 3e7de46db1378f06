"""Property-based: whatever bytes a manifest holds, validate never crashes and always answers well."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli import partnerctl
from tests.support.repo import CATALOG, PARTNER, POLICY, TENANT, PartnerRepo

VIOLATION_KEYS = {"file", "line", "path", "code", "message"}
CODES = {"SCHEMA", "NAME-01", "REF-01", "SEC-01", "PRIV-01", "RES-01", "LEGAL-01"}
YAML_NOISE = [
    ":",
    " ",
    "\n",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "!!",
    "'",
    '"',
    "#",
    "\t",
    "---",
    "|",
    ">",
    "?",
    "\\",
]

_fixtures = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_report(repo: PartnerRepo, count: int) -> None:
    result = partnerctl("--repo", str(repo.root), "-o", "json", "validate")
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert result.exit_code == (0 if report["valid"] else 1)
    assert report["files"] == count
    for violation in report["violations"]:
        assert set(violation) == VIOLATION_KEYS
        assert violation["code"] in CODES
        assert isinstance(violation["line"], int) and violation["line"] >= 1
        assert violation["message"]
    text = partnerctl("--repo", str(repo.root), "validate")
    assert text.exit_code == result.exit_code
    assert text.stdout.splitlines()[-1].startswith(f"{count} file")


def fresh_repo(tmp_path: Path, name: str) -> PartnerRepo:
    return PartnerRepo.create(tmp_path / name)


@_fixtures
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, len(PARTNER)), st.integers(0, 40), st.sampled_from([*YAML_NOISE, ""])),
        min_size=1,
        max_size=5,
    ),
    target=st.sampled_from(["partner", "policy", "catalog"]),
)
def test_mutated_manifests_never_crash(tmp_path_factory, cuts: list[tuple[int, int, str]], target: str) -> None:  # type: ignore[no-untyped-def]
    repo = fresh_repo(tmp_path_factory.mktemp("m"), "repo")
    original = {"partner": PARTNER, "policy": POLICY, "catalog": CATALOG}[target]
    text = original
    for position, length, insert in cuts:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + length :]
    path = {
        "partner": f"partners/{TENANT}/acme-bank.yaml",
        "policy": f"policies/{TENANT}.yaml",
        "catalog": "policies/scopes.yaml",
    }[target]
    if target != "partner":
        repo.write_partner()
    repo.write(path, text)
    check_report(repo, 3)


@_fixtures
@given(content=st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path_factory, content: bytes) -> None:  # type: ignore[no-untyped-def]
    repo = fresh_repo(tmp_path_factory.mktemp("b"), "repo")
    repo.write_partner(content)
    check_report(repo, 3)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)


@_fixtures
@given(
    spec=st.dictionaries(
        st.sampled_from(
            [
                "organization",
                "legalBasis",
                "contacts",
                "auth",
                "scopes",
                "residency",
                "webhooks",
                "mappings",
                "suspended",
                "extra",
            ]
        ),
        _json,
        max_size=9,
    )
)
def test_random_structured_partners_never_crash(tmp_path_factory, spec: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    repo = fresh_repo(tmp_path_factory.mktemp("s"), "repo")
    document = {
        "apiVersion": "partners.scp.dev/v1",
        "kind": "IntegrationPartner",
        "metadata": {"name": "acme-bank", "tenant": TENANT},
        "spec": spec,
    }
    repo.write_partner(json.dumps(document))  # JSON is YAML
    check_report(repo, 3)
