"""The policy rules of DESIGN §3 that a schema cannot express: names, references, security, privacy,
residency and legal basis. Pure functions from typed manifests to violations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reconciler.manifests import jwk
from reconciler.manifests.loader import Document, Path
from reconciler.manifests.models import (
    Classification,
    IntegrationPartner,
    ScopeCatalog,
    TenantPolicy,
)
from reconciler.manifests.urls import jwks_uri_problems, webhook_url_problems
from reconciler.manifests.violations import Code, Violation, dotted

ACCEPTED_AUTH_METHODS = frozenset({"oauth2-client-credentials"})

# Keys that hold secrets, compared lower-case with '-' and '_' removed.
_SECRET_KEY = re.compile(r"(secret|passw(or)?d|passphrase|apikey|accesskey|privatekey|token|bearer|authorization)")
# Cheap first pass over the raw text: a file with none of these cannot match the patterns.
_SECRET_KEY_WORDS = (
    "secret", "passw", "passphrase", "apikey", "api_key", "api-key", "accesskey", "access_key", "access-key",
    "privatekey", "private_key", "private-key", "token", "bearer", "authorization",
)  # fmt: skip
_SECRET_VALUE_PREFIXES = (
    "-----BEGIN", "scp_cs_", "scp_live_", "whsec_", "eyJ", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "xox", "k_live_", "k_test_", "Bearer ", "Basic ",
)  # fmt: skip
# Values that are secrets whatever key they sit under.
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bscp_(cs|live)_[A-Za-z0-9_-]{16,}"
    r"|\bwhsec_[A-Za-z0-9+/=_-]{16,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."
    r"|\b(AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\b[sr]k_(live|test)_[A-Za-z0-9]{16,}"
    r"|\b(Bearer|Basic) [A-Za-z0-9+/=._-]{16,})"
)


@dataclass
class Findings:
    """Collects violations for one file, resolving each path to its line."""

    file: str
    document: Document
    items: list[Violation] = field(default_factory=list)

    def add(self, code: Code, path: Path, message: str) -> None:
        self.items.append(Violation(self.file, self.document.line_of(path), dotted(path), code, message))


def secret_paths(data: Any, *, check_keys: bool) -> Iterator[tuple[Path, str]]:
    """Paths of plain secrets in a document and why; the secret itself is never repeated."""
    stack: list[tuple[Path, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                normalised = key.lower().replace("-", "").replace("_", "")
                if check_keys and _SECRET_KEY.search(normalised):
                    yield (
                        (*path, key),
                        f"'{key}' looks like a secret; secrets are issued by the platform, never written",
                    )
                else:
                    stack.append(((*path, key), child))
        elif isinstance(value, list):
            stack.extend(((*path, index), child) for index, child in enumerate(value))
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            yield path, "holds what looks like a secret or private key; remove it and rotate it"


def check_secrets(findings: Findings, *, check_keys: bool) -> set[Path]:
    """SEC-01 for plain secrets; returns their paths so the schema stage does not report them twice."""
    found: set[Path] = set()
    text = findings.document.text
    if check_keys:
        lowered = text.lower()
        check_keys = any(word in lowered for word in _SECRET_KEY_WORDS)
    if not check_keys and not any(prefix in text for prefix in _SECRET_VALUE_PREFIXES):
        return found
    for path, message in secret_paths(findings.document.data, check_keys=check_keys):
        findings.add(Code.SEC, path, f"plain secret in a manifest: {message} (SEC-01)")
        found.add(path)
    return found


def check_private_jwk_members(findings: Findings) -> set[Path]:
    """SEC-01 for private members of a JWK (``d``, ``p``, …, ``k``); returns their paths, as check_secrets does.

    Looks at every mapping in ``spec.auth`` that has a ``kty`` or sits in ``jwks.keys``, whatever else
    is wrong with the file: a private key in git is reported even when the schema rejects the rest."""
    data = findings.document.data
    spec = data.get("spec") if isinstance(data, dict) else None
    auth = spec.get("auth") if isinstance(spec, dict) else None
    if not isinstance(auth, dict):
        return set()
    found: set[Path] = set()
    root: Path = ("spec", "auth")
    stack: list[tuple[Path, Any, bool]] = [(root, auth, False)]
    while stack:
        path, value, in_key_set = stack.pop()
        if isinstance(value, dict):
            private = jwk.private_members(value) if in_key_set or "kty" in value else []
            for member in private:
                findings.add(
                    Code.SEC,
                    (*path, member),
                    f"private key member {member!r} in a JWK: a private key is a secret and never belongs in git; "
                    "list only the public key, and replace this key pair: its private half is exposed (SEC-01)",
                )
                found.add((*path, member))
            stack.extend(((*path, key), child, key == "keys") for key, child in value.items() if key not in private)
        elif isinstance(value, list):
            stack.extend(((*path, index), child, in_key_set) for index, child in enumerate(value))
    return found


def duplicates(names: Iterable[str]) -> Iterator[tuple[int, str, int]]:
    """(index, name, first index) for every name seen before."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            yield index, name, first[name]
        else:
            first[name] = index


# --- ScopeCatalog ---------------------------------------------------------------------------------


def check_catalog(findings: Findings, catalog: ScopeCatalog) -> None:
    spec = catalog.spec
    for index, name, first in duplicates(scope.name for scope in spec.scopes):
        findings.add(Code.NAME, ("spec", "scopes", index, "name"), f"duplicate scope {name!r} (also scopes[{first}])")
    for index, name, first in duplicates(event.name for event in spec.events):
        findings.add(Code.NAME, ("spec", "events", index, "name"), f"duplicate event {name!r} (also events[{first}])")
    routes: dict[tuple[str, str], str] = {}
    for scope_index, scope in enumerate(spec.scopes):
        for route_index, route in enumerate(scope.routes):
            owner = routes.setdefault((route.method, route.path), scope.name)
            if owner != scope.name:
                findings.add(
                    Code.NAME,
                    ("spec", "scopes", scope_index, "routes", route_index),
                    f"route {route.method} {route.path} is already opened by scope {owner!r}; "
                    "each route belongs to exactly one scope",
                )
    for index, event in enumerate(spec.events):
        if catalog.scope(event.scope) is None:
            findings.add(
                Code.REF,
                ("spec", "events", index, "scope"),
                f"event {event.name!r} names unknown scope {event.scope!r}",
            )


# --- TenantPolicy ---------------------------------------------------------------------------------


def check_tenant_policy(findings: Findings, policy: TenantPolicy, catalog: ScopeCatalog | None) -> None:
    spec = policy.spec
    approvers = spec.approvers
    for attribute in ("email", "github", "sshKey"):
        values = [getattr(approver, attribute) or f"\0{index}" for index, approver in enumerate(approvers)]
        for index, value, first in duplicates(values):
            findings.add(
                Code.NAME,
                ("spec", "approvers", index, attribute),
                f"approver {attribute} {value!r} is already used by approvers[{first}]",
            )
    for index, name, first in duplicates(spec.allowedScopes):
        findings.add(Code.NAME, ("spec", "allowedScopes", index), f"duplicate scope {name!r} (also [{first}])")
    if catalog is not None:
        for index, name in enumerate(spec.allowedScopes):
            if catalog.scope(name) is None:
                findings.add(
                    Code.REF, ("spec", "allowedScopes", index), f"unknown scope {name!r}; not in the scope catalog"
                )
    if spec.credentials.overlapDays >= spec.credentials.rotationDays:
        findings.add(
            Code.SEC,
            ("spec", "credentials", "overlapDays"),
            f"overlapDays ({spec.credentials.overlapDays}) must be shorter than rotationDays "
            f"({spec.credentials.rotationDays}), or old secrets never stop working",
        )


# --- IntegrationPartner ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerContext:
    """What a partner is checked against: the catalog, its tenant's policy, today."""

    catalog: ScopeCatalog | None
    policy: TenantPolicy | None
    today: date
    allow_loopback_webhooks: bool = False


def check_partner(findings: Findings, partner: IntegrationPartner, context: PartnerContext) -> None:
    _check_partner_names(findings, partner)
    _check_auth_and_webhook_urls(findings, partner, context)
    _check_client_authentication(findings, partner, context)
    legal_basis_ok = _check_legal_basis(findings, partner, context.today)
    review = partner.spec.accessReview
    if review is not None and date.fromisoformat(review.reviewedOn) > context.today:
        findings.add(
            Code.SCHEMA,
            ("spec", "accessReview", "reviewedOn"),
            f"reviewedOn {review.reviewedOn} is in the future; record the day the review took place",
        )
    catalog = context.catalog
    if catalog is not None:
        _check_references(findings, partner, catalog)
        if context.policy is not None:
            _check_privacy(findings, partner, catalog, context.policy, legal_basis_ok=legal_basis_ok)
    if context.policy is not None:
        regions = context.policy.spec.residency.allowedRegions
        if partner.spec.residency.region not in regions:
            findings.add(
                Code.RES,
                ("spec", "residency", "region"),
                f"region {partner.spec.residency.region!r} is outside tenant {context.policy.metadata.name!r}'s "
                f"allowed regions ({', '.join(regions)})",
            )


def _check_partner_names(findings: Findings, partner: IntegrationPartner) -> None:
    spec = partner.spec
    for index, name, first in duplicates(spec.scopes):
        findings.add(Code.NAME, ("spec", "scopes", index), f"duplicate scope {name!r} (also scopes[{first}])")
    for index, name, first in duplicates(webhook.name for webhook in spec.webhooks):
        findings.add(
            Code.NAME, ("spec", "webhooks", index, "name"), f"duplicate webhook name {name!r} (also webhooks[{first}])"
        )
    for index, name, first in duplicates(mapping.name for mapping in spec.mappings):
        findings.add(
            Code.NAME, ("spec", "mappings", index, "name"), f"duplicate mapping name {name!r} (also mappings[{first}])"
        )
    for webhook_index, webhook in enumerate(spec.webhooks):
        for index, name, first in duplicates(webhook.events):
            findings.add(
                Code.NAME,
                ("spec", "webhooks", webhook_index, "events", index),
                f"duplicate event {name!r} (also events[{first}])",
            )


def _check_auth_and_webhook_urls(findings: Findings, partner: IntegrationPartner, context: PartnerContext) -> None:
    method = partner.spec.auth.method
    if method not in ACCEPTED_AUTH_METHODS:
        findings.add(
            Code.SEC,
            ("spec", "auth", "method"),
            f"auth method {method!r} is weak or non-standard; OAuth2 client credentials is the platform "
            "standard (method: oauth2-client-credentials)",
        )
    for index, webhook in enumerate(partner.spec.webhooks):
        for problem in webhook_url_problems(webhook.url, allow_loopback=context.allow_loopback_webhooks):
            findings.add(Code.SEC, ("spec", "webhooks", index, "url"), f"webhook {webhook.name!r} URL {problem}")


def _check_client_authentication(findings: Findings, partner: IntegrationPartner, context: PartnerContext) -> None:
    """SEC-01: a method the tenant allows; public keys that are strong and named; a jwksUri safe to fetch."""
    auth = partner.spec.auth
    method = auth.client_authentication
    policy = context.policy
    if policy is not None and method not in policy.spec.clientAuthentication:
        written = "" if auth.clientAuthentication is not None else " (the default: clientAuthentication is not set)"
        findings.add(
            Code.SEC,
            ("spec", "auth", "clientAuthentication"),
            f"client authentication {method}{written} is not allowed by tenant {policy.metadata.name!r} "
            f"(allowed: {', '.join(policy.spec.clientAuthentication)})",
        )
    if auth.jwks is not None:
        keys_path: Path = ("spec", "auth", "jwks", "keys")
        kids: list[str] = []
        for index, key in enumerate(auth.jwks.keys):
            try:
                jwk.public_key(key.model_dump(exclude_none=True))
            except jwk.KeyProblem as weak:
                findings.add(Code.SEC, (*keys_path, index, weak.member), f"JWK keys[{index}]: {weak.message}")
            if key.kid is None:
                findings.add(
                    Code.SEC,
                    (*keys_path, index, "kid"),
                    f"JWK keys[{index}] has no kid; give every key a unique kid, which the partner's assertions "
                    "name in their header",
                )
            kids.append(key.kid if key.kid is not None else f"\0{index}")
        for index, kid, first in duplicates(kids):
            findings.add(
                Code.SEC,
                (*keys_path, index, "kid"),
                f"duplicate kid {kid!r} (also keys[{first}]); each key needs a kid of its own",
            )
    if auth.jwksUri is not None:
        # The --dev-allow-loopback-webhooks switch applies here too: in development the JWK Set is served
        # over http on loopback like the webhook receivers; a private or metadata address never passes.
        for problem in jwks_uri_problems(auth.jwksUri, allow_loopback=context.allow_loopback_webhooks):
            findings.add(Code.SEC, ("spec", "auth", "jwksUri"), f"jwksUri {problem}")


def _check_legal_basis(findings: Findings, partner: IntegrationPartner, today: date) -> bool:
    basis = partner.spec.legalBasis
    if basis is None:
        findings.add(
            Code.LEGAL,
            ("spec", "legalBasis"),
            "no legal basis: add spec.legalBasis with the signed data-sharing agreement "
            "(agreementId, signedOn, expiresOn)",
        )
        return False
    signed, expires = date.fromisoformat(basis.signedOn), date.fromisoformat(basis.expiresOn)
    ok = True
    if expires <= signed:
        findings.add(
            Code.LEGAL,
            ("spec", "legalBasis", "expiresOn"),
            f"agreement {basis.agreementId} expires ({expires}) before or on the day it was signed ({signed})",
        )
        ok = False
    if today > expires:
        findings.add(
            Code.LEGAL,
            ("spec", "legalBasis", "expiresOn"),
            f"agreement {basis.agreementId} expired on {expires}; renew it and record the new agreement",
        )
        ok = False
    if signed > today:
        findings.add(
            Code.LEGAL,
            ("spec", "legalBasis", "signedOn"),
            f"agreement {basis.agreementId} is dated {signed}, in the future; it is not in force yet",
        )
        ok = False
    return ok


def _check_references(findings: Findings, partner: IntegrationPartner, catalog: ScopeCatalog) -> None:
    spec = partner.spec
    for index, scope in enumerate(spec.scopes):
        if catalog.scope(scope) is None:
            findings.add(Code.REF, ("spec", "scopes", index), f"unknown scope {scope!r}; not in the scope catalog")
    mappings = {mapping.name: mapping for mapping in spec.mappings}
    for webhook_index, webhook in enumerate(spec.webhooks):
        for index, event in enumerate(webhook.events):
            if catalog.event(event) is None:
                findings.add(
                    Code.REF,
                    ("spec", "webhooks", webhook_index, "events", index),
                    f"unknown event type {event!r}; not in the scope catalog",
                )
        if webhook.mapping is not None:
            mapping = mappings.get(webhook.mapping)
            if mapping is None:
                findings.add(
                    Code.REF,
                    ("spec", "webhooks", webhook_index, "mapping"),
                    f"webhook {webhook.name!r} uses mapping {webhook.mapping!r}, which spec.mappings does not define",
                )
            elif mapping.event not in webhook.events:
                findings.add(
                    Code.REF,
                    ("spec", "webhooks", webhook_index, "mapping"),
                    f"mapping {mapping.name!r} translates {mapping.event!r}, which webhook {webhook.name!r} "
                    "does not subscribe to",
                )
    for mapping_index, mapping in enumerate(spec.mappings):
        event_type = catalog.event(mapping.event)
        if event_type is None:
            findings.add(
                Code.REF,
                ("spec", "mappings", mapping_index, "event"),
                f"unknown event type {mapping.event!r}; not in the scope catalog",
            )
            continue
        for platform_field in mapping.fields:
            if platform_field not in event_type.fields:
                findings.add(
                    Code.REF,
                    ("spec", "mappings", mapping_index, "fields", platform_field),
                    f"event {mapping.event!r} has no field {platform_field!r} "
                    f"(it has: {', '.join(sorted(event_type.fields))})",
                )


def _check_privacy(
    findings: Findings,
    partner: IntegrationPartner,
    catalog: ScopeCatalog,
    policy: TenantPolicy,
    *,
    legal_basis_ok: bool,
) -> None:
    spec = partner.spec
    rules = policy.spec.personalData
    tenant = policy.metadata.name
    for index, name in enumerate(spec.scopes):
        scope = catalog.scope(name)
        if scope is None:
            continue
        if name not in policy.spec.allowedScopes:
            findings.add(Code.PRIV, ("spec", "scopes", index), f"scope {name!r} is not allowed by tenant {tenant!r}")
        if scope.level is Classification.personal:
            org_type = spec.organization.type
            if org_type not in rules.allowedOrganizationTypes:
                allowed = ", ".join(rules.allowedOrganizationTypes) or "none"
                findings.add(
                    Code.PRIV,
                    ("spec", "scopes", index),
                    f"personal-data scope {name!r} is not allowed for organisation type {org_type!r} "
                    f"in tenant {tenant!r} (allowed: {allowed})",
                )
            if rules.requireLegalBasis and not legal_basis_ok:
                findings.add(
                    Code.PRIV,
                    ("spec", "scopes", index),
                    f"personal-data scope {name!r} needs a valid legal basis (spec.legalBasis)",
                )
    held = set(spec.scopes)
    clearance = catalog.clearance(spec.scopes)
    for webhook_index, webhook in enumerate(spec.webhooks):
        for index, event_name in enumerate(webhook.events):
            event = catalog.event(event_name)
            if event is not None and event.scope not in held:
                findings.add(
                    Code.PRIV,
                    ("spec", "webhooks", webhook_index, "events", index),
                    f"event {event_name!r} needs scope {event.scope!r}, which the partner does not hold",
                )
    for mapping_index, mapping in enumerate(spec.mappings):
        event = catalog.event(mapping.event)
        if event is None:
            continue
        for platform_field in mapping.fields:
            level = event.fields.get(platform_field)
            if level is not None and Classification[level] > clearance:
                findings.add(
                    Code.PRIV,
                    ("spec", "mappings", mapping_index, "fields", platform_field),
                    f"field {platform_field!r} is {level}, above the partner's clearance ({clearance.name}) "
                    "given by its scopes",
                )
