"""A small partner repository on disk, with manifests written as text so tests know every line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TENANT = "ministry-social-affairs"
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdVfIMocUMHPGkkXn6KyKA2MTh0YFJ/Lx+WTWWtsLw5 alice@msa.example"

CATALOG = """\
apiVersion: partners.scp.dev/v1
kind: ScopeCatalog
metadata: {name: scp}
spec:
  scopes:
    - name: beneficiary:read:anonymous
      description: Aggregated, de-identified beneficiary statistics
      classification: anonymous
      routes: [{method: GET, path: /v1/beneficiaries/stats}]
    - name: beneficiary:read:personal
      description: One beneficiary's record, with personal data
      classification: personal
      routes: [{method: GET, path: "/v1/beneficiaries/{id}"}]
    - name: payment:status:read
      description: Read the status of a payment
      classification: pseudonymous
      routes: [{method: GET, path: "/v1/payments/{id}/status"}]
    - name: payment:status:update
      description: Report the outcome of a payment
      classification: pseudonymous
      routes: [{method: POST, path: "/v1/payments/{id}/status"}]
    - name: grievance:case:read
      description: Read grievance cases
      classification: pseudonymous
      routes: [{method: GET, path: "/v1/grievances/{id}"}]
  events:
    - name: payment.status.changed
      scope: payment:status:read
      fields: {payment_id: pseudonymous, status: anonymous, amount: pseudonymous, beneficiary_name: personal}
"""

POLICY = f"""\
apiVersion: partners.scp.dev/v1
kind: TenantPolicy
metadata: {{name: {TENANT}}}
spec:
  approvers:
    - {{name: Alice Admin, email: alice@msa.example, github: alice-msa, sshKey: "{ALICE_KEY}"}}
  allowedScopes: [beneficiary:read:anonymous, beneficiary:read:personal, payment:status:read, payment:status:update]
  personalData: {{allowedOrganizationTypes: [government, ngo], requireLegalBasis: true}}
  residency: {{allowedRegions: [eu-west, eu-central]}}
  credentials: {{rotationDays: 90, overlapDays: 7}}
  webhooks: {{maxConsecutiveFailures: 5, onFailure: deactivate}}
"""

PARTNER = f"""\
apiVersion: partners.scp.dev/v1
kind: IntegrationPartner
metadata:
  name: acme-bank
  tenant: {TENANT}
spec:
  organization: {{displayName: ACME Bank, type: bank}}
  legalBasis:
    agreementId: DSA-2026-014
    signedOn: 2026-10-01
    expiresOn: 2027-10-01
  contacts:
    - {{role: tech-lead, name: Jane Doe, email: jane@acme-bank.example}}
  auth:
    method: oauth2-client-credentials
  scopes:
    - beneficiary:read:anonymous
    - payment:status:read
    - payment:status:update
  residency:
    region: eu-west
  webhooks:
    - name: payment-events
      url: "https://hooks.acme-bank.example/scp"
      events: [payment.status.changed]
      mapping: payment-v1
  mappings:
    - name: payment-v1
      event: payment.status.changed
      fields:
        payment_id: paymentReference
        status: state
  suspended: false
"""

ALICE_APPROVER = f'{{name: Alice Admin, email: alice@msa.example, github: alice-msa, sshKey: "{ALICE_KEY}"}}'


def policy_text(tenant: str = TENANT, approver: str = ALICE_APPROVER) -> str:
    """The tenant policy above, for ``tenant``, with ``approver`` (a YAML flow mapping) as its approver."""
    assert ALICE_APPROVER in POLICY
    return POLICY.replace(ALICE_APPROVER, approver).replace(TENANT, tenant)


# The date the texts above are valid on; tests set PARTNERCTL_NOW to it.
TODAY = "2026-11-28T12:00:00Z"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def edit(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced once; fails loudly when ``old`` is not there."""
    assert old in text, f"{old!r} not in text"
    return text.replace(old, new, 1)


@dataclass
class PartnerRepo:
    """A partner repository folder: one tenant, the catalog, and partners written as text."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> PartnerRepo:
        repo = cls(root)
        repo.write("policies/scopes.yaml", CATALOG)
        repo.write(f"policies/{TENANT}.yaml", POLICY)
        return repo

    def write(self, path: str, text: str | bytes) -> str:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
        return path

    def write_partner(self, text: str = PARTNER, name: str = "acme-bank", tenant: str = TENANT) -> str:
        return self.write(f"partners/{tenant}/{name}.yaml", text)

    def write_partners(self, hook_base: str, *names: str) -> None:
        """Copies of PARTNER named ``names``, their webhook at ``hook_base``/NAME (a loopback receiver)."""
        for name in names:
            text = PARTNER.replace("https://hooks.acme-bank.example/scp", f"{hook_base}/{name}")
            self.write_partner(text.replace("acme-bank", name), name=name)
