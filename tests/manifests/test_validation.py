"""Every violation code, triggered by a manifest, reported at the exact line (DESIGN §3)."""

from __future__ import annotations

import pytest

from tests.support.checks import assert_only, assert_violation, codes_at, validate
from tests.support.repo import CATALOG, PARTNER, POLICY, TENANT, PartnerRepo, edit, line_of

PARTNER_FILE = f"partners/{TENANT}/acme-bank.yaml"
POLICY_FILE = f"policies/{TENANT}.yaml"


def test_the_reference_partner_is_valid(repo: PartnerRepo) -> None:
    repo.write_partner()
    report = validate(repo)
    assert report == {"valid": True, "files": 3, "violations": []}


# --- SCHEMA ---------------------------------------------------------------------------------------


def test_unknown_key_is_a_schema_error_at_its_line(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "  suspended: false\n", "  suspended: false\n  supsended: true\n")
    repo.write_partner(text)
    assert_only(
        validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "supsended"), path="spec.supsended"
    )


def test_missing_required_field_points_at_its_parent(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "  residency:\n    region: eu-west\n", "")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "spec:"), path="spec.residency")


def test_wrong_type_and_bad_enum_are_both_reported(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "type: bank}", "type: casino}")
    text = edit(text, "suspended: false", 'suspended: "no"')
    repo.write_partner(text)
    report = validate(repo)
    assert_violation(report, file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "casino"))
    assert_violation(report, file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "suspended:"))


def test_invalid_calendar_date_is_a_schema_error(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "expiresOn: 2027-10-01", "expiresOn: 2027-02-30")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "expiresOn"))


def test_partner_needs_a_tech_lead_contact(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "role: tech-lead", "role: business")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "contacts:"))


def test_wrong_api_version_is_a_schema_error(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "partners.scp.dev/v1", "partners.scp.dev/v2")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=1, path="apiVersion")


def test_unknown_kind_is_a_schema_error(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "kind: IntegrationPartner", "kind: Partner")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=2, path="kind")


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"apiVersion: partners.scp.dev/v1\nkind: [IntegrationPartner\nmetadata: {}\n", 3),
        (b"apiVersion: partners.scp.dev/v1\nkind: IntegrationPartner\nkind: ScopeCatalog\n", 3),
        (b"- just\n- a list\n", 1),
        (b"apiVersion: partners.scp.dev/v1\ndescription: caf\xe9\n", 2),
        (b"a: 1\n---\nb: 2\n", 3),
        (b"", 1),
        (
            b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
            None,
        ),
    ],
    ids=["malformed", "duplicate-key", "not-a-mapping", "not-utf8", "two-documents", "empty", "billion-laughs"],
)
def test_unreadable_yaml_is_a_schema_violation_not_a_traceback(
    repo: PartnerRepo, content: bytes, line: int | None
) -> None:
    repo.write_partner(content)
    report = validate(repo)
    assert report["valid"] is False
    [violation] = report["violations"]
    assert violation["file"] == PARTNER_FILE
    assert violation["code"] == "SCHEMA"
    if line is not None:
        assert violation["line"] == line


def test_all_violations_of_a_file_are_reported(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "method: oauth2-client-credentials", "method: api-key")
    text = edit(text, "region: eu-west", "region: us-east")
    text = edit(text, "https://hooks.acme-bank.example/scp", "http://hooks.acme-bank.example/scp")
    repo.write_partner(text)
    assert sorted(codes_at(validate(repo), PARTNER_FILE)) == [
        ("RES-01", line_of(text, "region:")),
        ("SEC-01", line_of(text, "method:")),
        ("SEC-01", line_of(text, "url:")),
    ]


# --- NAME-01 --------------------------------------------------------------------------------------


def test_name_must_equal_file_stem(repo: PartnerRepo) -> None:
    repo.write_partner(PARTNER, name="acme")
    assert_only(validate(repo), file=f"partners/{TENANT}/acme.yaml", code="NAME-01", line=4, path="metadata.name")


def test_tenant_must_equal_folder(repo: PartnerRepo) -> None:
    repo.write_partner(PARTNER, tenant="other-tenant")
    report = validate(repo)
    assert_violation(
        report, file="partners/other-tenant/acme-bank.yaml", code="NAME-01", line=5, path="metadata.tenant"
    )


def test_same_partner_in_two_files_is_a_duplicate(repo: PartnerRepo) -> None:
    repo.write_partner()
    repo.write(f"partners/{TENANT}/acme-bank.yml", PARTNER)
    report = validate(repo)
    assert_violation(report, file=f"partners/{TENANT}/acme-bank.yml", code="NAME-01", line=4)
    assert codes_at(report, PARTNER_FILE) == []


def test_duplicate_webhook_and_mapping_names(repo: PartnerRepo) -> None:
    text = edit(
        PARTNER,
        "  mappings:\n",
        '    - name: payment-events\n      url: "https://other.acme-bank.example/x"\n'
        "      events: [payment.status.changed]\n  mappings:\n",
    )
    text = edit(
        text,
        "  suspended: false\n",
        "    - name: payment-v1\n      event: payment.status.changed\n"
        "      fields: {status: state}\n  suspended: false\n",
    )
    repo.write_partner(text)
    report = validate(repo)
    assert_violation(report, file=PARTNER_FILE, code="NAME-01", line=line_of(text, "- name: payment-events", 2))
    assert_violation(report, file=PARTNER_FILE, code="NAME-01", line=line_of(text, "- name: payment-v1", 2))


def test_duplicate_scope_in_partner(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "    - payment:status:update\n", "    - payment:status:update\n    - payment:status:read\n")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="NAME-01", line=line_of(text, "- payment:status:read", 2))


def test_policy_name_must_equal_file_stem(repo: PartnerRepo) -> None:
    repo.write("policies/other.yaml", POLICY)
    assert_violation(validate(repo), file="policies/other.yaml", code="NAME-01", line=3, path="metadata.name")


def test_wrong_kind_in_partners_folder(repo: PartnerRepo) -> None:
    repo.write(f"partners/{TENANT}/scopes.yaml", CATALOG)
    assert_only(validate(repo), file=f"partners/{TENANT}/scopes.yaml", code="NAME-01", line=2)


def test_catalog_duplicate_scopes_and_routes(repo: PartnerRepo) -> None:
    text = CATALOG.replace(
        "  events:\n",
        "    - name: payment:status:read\n      description: again\n      classification: anonymous\n"
        "      routes: [{method: GET, path: /v1/beneficiaries/stats}]\n  events:\n",
    )
    repo.write("policies/scopes.yaml", text)
    report = validate(repo, "policies/scopes.yaml")
    assert_violation(
        report, file="policies/scopes.yaml", code="NAME-01", line=line_of(text, "name: payment:status:read", 2)
    )
    assert_violation(
        report, file="policies/scopes.yaml", code="NAME-01", line=line_of(text, "path: /v1/beneficiaries/stats", 2)
    )


# --- REF-01 ---------------------------------------------------------------------------------------


def test_unknown_scope(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "    - payment:status:update\n", "    - payment:status:delete\n")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="REF-01", line=line_of(text, "payment:status:delete"))


def test_unknown_event_type(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "events: [payment.status.changed]", "events: [payment.status.changed, payment.lost]")
    repo.write_partner(text)
    assert_only(
        validate(repo),
        file=PARTNER_FILE,
        code="REF-01",
        line=line_of(text, "payment.lost"),
        path="spec.webhooks[0].events[1]",
    )


def test_unknown_mapping(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "mapping: payment-v1", "mapping: payment-v2")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="REF-01", line=line_of(text, "mapping: payment-v2"))


def test_unknown_event_field_in_mapping(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "        status: state\n", "        status: state\n        iban: accountNumber\n")
    repo.write_partner(text)
    assert_only(
        validate(repo),
        file=PARTNER_FILE,
        code="REF-01",
        line=line_of(text, "iban:"),
        path="spec.mappings[0].fields.iban",
    )


def test_unknown_tenant(repo: PartnerRepo) -> None:
    text = PARTNER.replace(TENANT, "ghost-tenant")
    repo.write_partner(text, tenant="ghost-tenant")
    assert_only(
        validate(repo), file="partners/ghost-tenant/acme-bank.yaml", code="REF-01", line=5, path="metadata.tenant"
    )


def test_tenant_policy_allowing_unknown_scope(repo: PartnerRepo) -> None:
    text = edit(POLICY, "allowedScopes: [", "allowedScopes: [teleport:anywhere, ")
    repo.write(POLICY_FILE, text)
    report = validate(repo, POLICY_FILE)
    assert_only(report, file=POLICY_FILE, code="REF-01", line=line_of(text, "allowedScopes"))


def test_broken_tenant_policy_blocks_only_its_partners(repo: PartnerRepo) -> None:
    repo.write(POLICY_FILE, edit(POLICY, "onFailure: deactivate", "onFailure: explode"))
    repo.write_partner()
    repo.write("policies/other.yaml", POLICY.replace(TENANT, "other"))
    repo.write_partner(PARTNER.replace(TENANT, "other"), tenant="other")
    report = validate(repo)
    assert codes_at(report, "partners/other/acme-bank.yaml") == []
    assert codes_at(report, PARTNER_FILE) == [("REF-01", 5)]
    assert [code for code, _ in codes_at(report, POLICY_FILE)] == ["SCHEMA"]


# --- SEC-01 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["api-key", "basic", "none", "oauth2-password", "shared-secret"])
def test_weak_auth_methods(repo: PartnerRepo, method: str) -> None:
    text = edit(PARTNER, "method: oauth2-client-credentials", f"method: {method}")
    repo.write_partner(text)
    assert_only(
        validate(repo), file=PARTNER_FILE, code="SEC-01", line=line_of(text, "method:"), path="spec.auth.method"
    )


@pytest.mark.parametrize(
    "line",
    [
        "    clientSecret: s3cr3t-value-here",
        "    password: hunter2hunter2",
        "    api_key: 0123456789abcdef",
    ],
)
def test_plain_secret_key_in_auth_is_sec01_and_never_echoed(repo: PartnerRepo, line: str) -> None:
    text = edit(PARTNER, "    method: oauth2-client-credentials\n", f"    method: oauth2-client-credentials\n{line}\n")
    repo.write_partner(text)
    report = validate(repo)
    assert_only(report, file=PARTNER_FILE, code="SEC-01", line=line_of(text, line.strip()))
    secret = line.split(": ", 1)[1]
    assert secret not in str(report)


def test_secret_value_in_an_annotation(repo: PartnerRepo) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    text = edit(PARTNER, "  tenant: ", f"  annotations:\n    deploy-note: use {token}\n  tenant: ")
    repo.write_partner(text)
    report = validate(repo)
    assert_only(report, file=PARTNER_FILE, code="SEC-01", line=line_of(text, "deploy-note"))
    assert token not in str(report)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.acme-bank.example/scp",
        "https://user:pass@hooks.acme-bank.example/scp",
        "https://hooks.acme-bank.example/scp?token=abc",
        "https://10.0.0.7/scp",
        "https://192.168.1.20/scp",
        "https://127.0.0.1:8443/scp",
        "https://localhost/scp",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/scp",
        "https://[fe80::1]/scp",
        "https://[::ffff:10.0.0.1]/scp",
        "https://2130706433/scp",
        "https://0x7f.1/scp",
        "https://metadata.google.internal/computeMetadata/v1",
        "ftp://hooks.acme-bank.example/scp",
    ],
)
def test_unsafe_webhook_urls(repo: PartnerRepo, url: str) -> None:
    text = edit(PARTNER, "https://hooks.acme-bank.example/scp", url)
    repo.write_partner(text)
    report = validate(repo)
    assert {v["code"] for v in report["violations"]} == {"SEC-01"}
    assert_violation(report, file=PARTNER_FILE, code="SEC-01", line=line_of(text, "url:"), path="spec.webhooks[0].url")


def test_loopback_http_webhook_allowed_only_with_dev_flag(repo: PartnerRepo) -> None:
    repo.write_partner(edit(PARTNER, "https://hooks.acme-bank.example/scp", "http://127.0.0.1:9000/hook"))
    assert validate(repo)["valid"] is False
    assert validate(repo, extra=("--dev-allow-loopback-webhooks",))["valid"] is True


def test_dev_flag_never_allows_private_addresses(repo: PartnerRepo) -> None:
    repo.write_partner(edit(PARTNER, "https://hooks.acme-bank.example/scp", "http://10.1.2.3/hook"))
    assert validate(repo, extra=("--dev-allow-loopback-webhooks",))["valid"] is False


def test_overlap_not_shorter_than_rotation(repo: PartnerRepo) -> None:
    text = edit(
        POLICY, "credentials: {rotationDays: 90, overlapDays: 7}", "credentials: {rotationDays: 30, overlapDays: 30}"
    )
    repo.write(POLICY_FILE, text)
    assert_only(validate(repo, POLICY_FILE), file=POLICY_FILE, code="SEC-01", line=line_of(text, "credentials:"))


# --- PRIV-01 --------------------------------------------------------------------------------------


def test_scope_not_allowed_by_tenant(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "    - payment:status:update\n", "    - payment:status:update\n    - grievance:case:read\n")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="PRIV-01", line=line_of(text, "grievance:case:read"))


def test_personal_scope_for_disallowed_organisation_type(repo: PartnerRepo) -> None:
    text = edit(
        PARTNER, "    - payment:status:update\n", "    - payment:status:update\n    - beneficiary:read:personal\n"
    )
    repo.write_partner(text)  # a bank; the tenant allows personal data for government and ngo only
    assert_only(validate(repo), file=PARTNER_FILE, code="PRIV-01", line=line_of(text, "beneficiary:read:personal"))


def test_personal_scope_without_legal_basis(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "type: bank}", "type: ngo}")
    text = edit(text, "    - payment:status:update\n", "    - payment:status:update\n    - beneficiary:read:personal\n")
    text = edit(
        text, "  legalBasis:\n    agreementId: DSA-2026-014\n    signedOn: 2026-10-01\n    expiresOn: 2027-10-01\n", ""
    )
    repo.write_partner(text)
    report = validate(repo)
    assert sorted(codes_at(report, PARTNER_FILE)) == [
        ("LEGAL-01", line_of(text, "spec:")),
        ("PRIV-01", line_of(text, "beneficiary:read:personal")),
    ]


def test_personal_scope_for_ngo_with_legal_basis_is_fine(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "type: bank}", "type: ngo}")
    text = edit(text, "    - payment:status:update\n", "    - payment:status:update\n    - beneficiary:read:personal\n")
    repo.write_partner(text)
    assert validate(repo)["valid"] is True


def test_webhook_event_needs_the_events_scope(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "    - payment:status:read\n", "")
    repo.write_partner(text)
    assert_only(
        validate(repo),
        file=PARTNER_FILE,
        code="PRIV-01",
        line=line_of(text, "events: [payment.status.changed]"),
        path="spec.webhooks[0].events[0]",
    )


def test_mapping_exposing_field_above_clearance(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "        status: state\n", "        status: state\n        beneficiary_name: holderName\n")
    repo.write_partner(text)
    assert_only(
        validate(repo),
        file=PARTNER_FILE,
        code="PRIV-01",
        line=line_of(text, "beneficiary_name"),
        path="spec.mappings[0].fields.beneficiary_name",
    )


# --- RES-01 ---------------------------------------------------------------------------------------


def test_region_outside_residency(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "region: eu-west", "region: us-east")
    repo.write_partner(text)
    assert_only(
        validate(repo), file=PARTNER_FILE, code="RES-01", line=line_of(text, "region:"), path="spec.residency.region"
    )


# --- LEGAL-01 -------------------------------------------------------------------------------------


def test_missing_legal_basis(repo: PartnerRepo) -> None:
    text = edit(
        PARTNER,
        "  legalBasis:\n    agreementId: DSA-2026-014\n    signedOn: 2026-10-01\n    expiresOn: 2027-10-01\n",
        "",
    )
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="LEGAL-01", line=line_of(text, "spec:"), path="spec.legalBasis")


def test_expired_legal_basis_follows_partnerctl_now(repo: PartnerRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write_partner()
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-10-01T23:59:59Z")
    assert validate(repo)["valid"] is True  # valid through its last day
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-10-02T00:00:00Z")
    assert_only(validate(repo), file=PARTNER_FILE, code="LEGAL-01", line=line_of(PARTNER, "expiresOn"))


def test_agreement_signed_in_the_future(repo: PartnerRepo) -> None:
    text = edit(PARTNER, "signedOn: 2026-10-01", "signedOn: 2026-12-01")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="LEGAL-01", line=line_of(text, "signedOn"))


def test_bad_partnerctl_now_is_a_usage_error(repo: PartnerRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.cli import partnerctl

    monkeypatch.setenv("PARTNERCTL_NOW", "next tuesday")
    result = partnerctl("--repo", str(repo.root), "validate")
    assert result.exit_code == 2
    assert "PARTNERCTL_NOW" in result.stderr


# --- isolation ------------------------------------------------------------------------------------


def test_one_bad_partner_never_hides_the_others(repo: PartnerRepo) -> None:
    repo.write_partner(b"\xff\xfe not yaml", name="broken")
    repo.write_partner(PARTNER.replace("acme-bank", "beta-bank"), name="beta-bank")
    report = validate(repo)
    assert report["files"] == 4
    assert {v["file"] for v in report["violations"]} == {f"partners/{TENANT}/broken.yaml"}
