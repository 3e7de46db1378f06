"""Checks manifest files: YAML, kind, schema, place in the repository, then the policy rules.

The entry point is :class:`Validator`. It reads the scope catalog and tenant policies it needs
from a :class:`Tree` (a working tree now, a git revision for plan/apply) once each, and checks
one file at a time so that memory stays flat over tens of thousands of partners.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from pydantic import ValidationError

from reconciler.manifests import rules
from reconciler.manifests.loader import Document, Path, YamlProblem, load_document
from reconciler.manifests.models import (
    API_VERSION,
    MODELS,
    IntegrationPartner,
    Manifest,
    ScopeCatalog,
    TenantPolicy,
)
from reconciler.manifests.violations import Code, Violation, dotted

PARTNERS_DIR = "partners"
POLICIES_DIR = "policies"
CATALOG_PATH = "policies/scopes.yaml"
YAML_SUFFIXES = (".yaml", ".yml")


class Tree(Protocol):
    """Read-only view of a partner repository's files, by repository-relative POSIX path."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def manifest_paths(self) -> list[str]:
        """Every YAML file under partners/ and policies/, sorted."""


@dataclass(frozen=True)
class Checked:
    """A file after the per-file checks: its document and model when they could be built."""

    file: str
    document: Document | None
    manifest: Manifest | None
    violations: list[Violation]

    @property
    def valid(self) -> bool:
        return self.manifest is not None and not self.violations


@dataclass(frozen=True)
class PolicyStatus:
    """A tenant's policy when it can be used; else why not, and whether it exists but is invalid."""

    policy: TenantPolicy | None
    problem: str | None = None
    invalid: bool = False  # the file is there but has violations (vs. no such tenant)


@dataclass
class Report:
    """The outcome of validating a set of files."""

    files: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "files": self.files,
            "violations": [violation.to_json() for violation in sorted(self.violations)],
        }


def expected_kind(path: str) -> str | None:
    """The manifest kind a repository path must hold; None outside partners/ and policies/."""
    parts = path.split("/")
    if parts[0] == PARTNERS_DIR:
        return "IntegrationPartner"
    if parts[0] == POLICIES_DIR:
        return "ScopeCatalog" if path == CATALOG_PATH else "TenantPolicy"
    return None


def is_manifest_path(path: str) -> bool:
    parts = path.split("/")
    return (
        len(parts) >= 2
        and parts[0] in (PARTNERS_DIR, POLICIES_DIR)
        and path.endswith(YAML_SUFFIXES)
        and not any(part.startswith(".") for part in parts)
    )


def check_file(path: str, raw: bytes, *, in_repository: bool = True) -> Checked:
    """Per-file checks that need no other file: YAML, kind, schema, plain secrets, place."""
    try:
        document = load_document(raw)
    except YamlProblem as problem:
        return Checked(path, None, None, [Violation(path, problem.line, "", Code.SCHEMA, problem.message)])
    findings = rules.Findings(path, document)
    data = document.data
    kind = data.get("kind")
    model = MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        findings.add(
            Code.SCHEMA,
            ("kind",),
            f"unknown kind {kind!r}; expected one of {', '.join(MODELS)} (apiVersion {API_VERSION})",
        )
        return Checked(path, document, None, findings.items)
    secret_paths = rules.check_secrets(findings, check_keys=kind != "ScopeCatalog")
    if kind == "IntegrationPartner":
        secret_paths |= rules.check_private_jwk_members(findings)
    manifest: Manifest | None = None
    try:
        manifest = model.model_validate(data)
    except ValidationError as error:
        for detail in error.errors(include_url=False, include_input=False):
            location: Path = tuple(detail["loc"])
            if location in secret_paths:
                continue  # already reported as SEC-01, which says more than "unknown field"
            findings.add(Code.SCHEMA, location, _schema_message(detail["type"], location, detail["msg"]))
    if in_repository:
        _check_place(findings, path, kind, data)
    return Checked(path, document, manifest, findings.items)


def _schema_message(error_type: str, location: Path, text: str) -> str:
    name = location[-1] if location else "document"
    if error_type == "missing":
        return f"required field {dotted(location)!r} is missing"
    if error_type == "extra_forbidden":
        return f"unknown field {name!r} (a typo?); see the JSON Schema in schemas/ for the fields allowed here"
    text = text.removeprefix("Value error, ")
    return f"{dotted(location) or 'document'}: {text}"


def _check_place(findings: rules.Findings, path: str, kind: str, data: dict[str, Any]) -> None:
    """NAME-01: a manifest's kind, name and tenant must match where the file is."""
    wanted = expected_kind(path)
    parts = path.split("/")
    stem = posixpath.splitext(parts[-1])[0]
    if wanted is None:
        if kind in ("IntegrationPartner", "TenantPolicy", "ScopeCatalog"):
            findings.add(Code.NAME, ("kind",), f"a {kind} must live under {PARTNERS_DIR}/ or {POLICIES_DIR}/")
        return
    if kind == "TrustRoot":
        findings.add(
            Code.NAME,
            ("kind",),
            "a TrustRoot must not live in the reconciled repository; give it to the reconciler with --trust-root",
        )
        return
    if kind != wanted:
        findings.add(Code.NAME, ("kind",), f"{path} must hold a {wanted}, not a {kind}")
        return
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return
    name = metadata.get("name")
    if wanted == "IntegrationPartner":
        if len(parts) != 3:
            findings.add(Code.NAME, ("metadata",), "partner files live at partners/<tenant>/<name>.yaml")
            return
        if isinstance(name, str) and name != stem:
            findings.add(Code.NAME, ("metadata", "name"), f"name {name!r} must equal the file name {stem!r}")
        tenant = metadata.get("tenant")
        if isinstance(tenant, str) and tenant != parts[1]:
            findings.add(
                Code.NAME, ("metadata", "tenant"), f"tenant {tenant!r} must equal the folder name {parts[1]!r}"
            )
    elif wanted == "TenantPolicy":
        if len(parts) != 2:
            findings.add(Code.NAME, ("metadata",), "tenant policies live at policies/<tenant>.yaml")
            return
        if isinstance(name, str) and name != stem:
            findings.add(Code.NAME, ("metadata", "name"), f"tenant name {name!r} must equal the file name {stem!r}")


class Validator:
    """Validates files of one repository, reading each policy file at most once."""

    def __init__(self, tree: Tree, *, today: date, allow_loopback_webhooks: bool = False) -> None:
        self._tree = tree
        self._today = today
        self._allow_loopback = allow_loopback_webhooks
        self._checked: dict[str, Checked | None] = {}
        self._policies: dict[str, PolicyStatus] = {}
        self._partner_files: dict[str, str] = {}

    def validate(self, paths: Iterable[str], *, outside: Iterable[tuple[str, bytes]] = ()) -> Report:
        """Validate repository ``paths`` and files ``outside`` the repository (name, bytes)."""
        report = Report()
        for path in paths:
            report.files += 1
            report.violations.extend(self.check(path))
        for name, raw in outside:
            report.files += 1
            report.violations.extend(self._check_outside(name, raw))
        return report

    def check(self, path: str, raw: bytes | None = None) -> list[Violation]:
        """All violations of the repository file at ``path`` (read from the tree unless given)."""
        checked = self._policy_file(path) if expected_kind(path) != "IntegrationPartner" else None
        if checked is None:
            if raw is None:
                raw = self._tree.read(path)
            if raw is None:
                return [Violation(path, 1, "", Code.REF, "file not found")]
            checked = check_file(path, raw)
        return checked.violations + self._check_in_context(checked)

    def check_partner(self, path: str) -> tuple[IntegrationPartner | None, list[Violation]]:
        """A partner file's model (when it could be built) and all its violations."""
        raw = self._tree.read(path)
        if raw is None:
            return None, [Violation(path, 1, "", Code.REF, "file not found")]
        checked = check_file(path, raw)
        manifest = checked.manifest if isinstance(checked.manifest, IntegrationPartner) else None
        return manifest, checked.violations + self._check_in_context(checked)

    def catalog(self) -> ScopeCatalog | None:
        checked = self._policy_file(CATALOG_PATH)
        if checked is not None and checked.valid and isinstance(checked.manifest, ScopeCatalog):
            return checked.manifest
        return None

    def tenant_policy(self, tenant: str) -> PolicyStatus:
        """The tenant's valid policy, or why it cannot be used."""
        if tenant not in self._policies:
            self._policies[tenant] = self._usable_policy(tenant)
        return self._policies[tenant]

    def _usable_policy(self, tenant: str) -> PolicyStatus:
        path = f"{POLICIES_DIR}/{tenant}.yaml"
        checked = self._policy_file(path)
        if checked is None:
            return PolicyStatus(None, f"unknown tenant {tenant!r}: there is no tenant policy {path}")
        if checked.valid and isinstance(checked.manifest, TenantPolicy):
            extra = self._check_in_context(checked)
            if not extra:
                return PolicyStatus(checked.manifest)
        message = f"tenant policy {path} has violations; fix it first (partnerctl validate {path})"
        return PolicyStatus(None, message, invalid=True)

    def _policy_file(self, path: str) -> Checked | None:
        if path not in self._checked:
            raw = self._tree.read(path)
            self._checked[path] = None if raw is None else check_file(path, raw)
        return self._checked[path]

    def _check_outside(self, name: str, raw: bytes) -> list[Violation]:
        checked = check_file(name, raw, in_repository=False)
        return checked.violations + self._check_in_context(checked)

    def _check_in_context(self, checked: Checked) -> list[Violation]:
        manifest, document = checked.manifest, checked.document
        if manifest is None or document is None:
            return []
        findings = rules.Findings(checked.file, document)
        if isinstance(manifest, ScopeCatalog):
            rules.check_catalog(findings, manifest)
        elif isinstance(manifest, TenantPolicy):
            rules.check_tenant_policy(findings, manifest, self.catalog())
        elif isinstance(manifest, IntegrationPartner):
            self._check_partner(findings, manifest)
        return findings.items

    def _check_partner(self, findings: rules.Findings, partner: IntegrationPartner) -> None:
        first_file = self._partner_files.setdefault(partner.key, findings.file)
        if first_file != findings.file:
            findings.add(Code.NAME, ("metadata", "name"), f"duplicate partner {partner.key!r}; also in {first_file}")
        catalog = self.catalog()
        if catalog is None:
            findings.add(
                Code.REF,
                ("spec", "scopes"),
                f"the scope catalog {CATALOG_PATH} is missing or has violations; scopes cannot be checked",
            )
        status = self.tenant_policy(partner.metadata.tenant)
        if status.problem is not None:
            findings.add(Code.REF, ("metadata", "tenant"), status.problem)
        context = rules.PartnerContext(
            catalog=catalog, policy=status.policy, today=self._today, allow_loopback_webhooks=self._allow_loopback
        )
        rules.check_partner(findings, partner, context)
