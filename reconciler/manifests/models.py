"""The manifest kinds as typed models; they accept exactly what the JSON Schemas in ``schemas/`` accept.

``tests/test_manifests.py`` keeps the two in step by running a corpus of documents through both.
Models are strict: no type coercion ("90" is not 90), unknown keys are errors, null is never a value.
"""

from __future__ import annotations

import collections.abc
from datetime import date
from enum import IntEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from reconciler.manifests.jwk import BASE64URL_PATTERN

API_VERSION = "partners.scp.dev/v1"


def _real_date(value: str) -> str:
    date.fromisoformat(value)  # ValueError for 2026-02-30
    return value


def _integral(value: Any) -> Any:
    # JSON Schema counts 90.0 as an integer; so do we.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
IsoDate = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), AfterValidator(_real_date)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
ScopeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)+$")]
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
PartnerFieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9_./-]{0,251}[A-Za-z0-9])?$")]
LabelValue = Annotated[str, StringConstraints(max_length=4096)]
StringMap = dict[LabelKey, LabelValue]
Int = Annotated[int, BeforeValidator(_integral)]
Base64Url = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=BASE64URL_PATTERN)]
ClientAuthenticationMethod = Literal["client_secret", "private_key_jwt"]
CLIENT_AUTHENTICATION_METHODS: tuple[ClientAuthenticationMethod, ...] = ("client_secret", "private_key_jwt")
DEFAULT_CLIENT_AUTHENTICATION: ClientAuthenticationMethod = "client_secret"
MAX_JWKS_KEYS = 20
OrganizationType = Literal["ngo", "bank", "government", "other"]
ClassificationName = Literal["anonymous", "pseudonymous", "personal"]
SSH_KEY_PATTERN = (
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$"
)


class Classification(IntEnum):
    """Data sensitivity, ordered: a partner's clearance is the highest among its scopes."""

    anonymous = 0
    pseudonymous = 1
    personal = 2


class Model(BaseModel):
    """Strict base: unknown keys, coercion and nulls are all schema errors."""

    # defer_build: a validator is built when a kind is first validated, not for every nested class at import
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re", defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be empty (null)")
        return value


# --- IntegrationPartner ---------------------------------------------------------------------------


class PartnerMetadata(Model):
    name: DnsLabel
    tenant: DnsLabel
    labels: StringMap = Field(default_factory=dict)
    annotations: StringMap = Field(default_factory=dict)


class Organization(Model):
    displayName: Text
    type: OrganizationType
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    website: Text | None = None


class LegalBasis(Model):
    agreementId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")]
    signedOn: IsoDate
    expiresOn: IsoDate
    purpose: Text | None = None


class Contact(Model):
    role: Literal["tech-lead", "business", "security", "legal", "data-protection"]
    name: Text
    email: Email
    phone: Annotated[str, StringConstraints(pattern=r"^\+[0-9][0-9 ()-]{5,30}$")] | None = None


class Jwk(Model):
    """A public JSON Web Key (RFC 7517). Which types, sizes and algorithms pass policy is SEC-01 (``jwk.py``);
    private members (``d``, ``p``, …) are unknown keys here, reported as SEC-01 before the schema runs."""

    kty: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,16}$")]
    crv: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,16}$")] | None = None
    n: Base64Url | None = None
    e: Base64Url | None = None
    x: Base64Url | None = None
    y: Base64Url | None = None
    kid: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,128}$")] | None = None
    alg: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+-]{1,32}$")] | None = None
    use: Literal["sig"] | None = None
    key_ops: Annotated[list[Literal["verify"]], Field(min_length=1, max_length=1)] | None = None

    @model_validator(mode="after")
    def _members_of_its_type(self) -> Jwk:
        members = _JWK_MEMBERS.get(self.kty)
        if members is not None:
            required, forbidden = members
            missing = [name for name in required if getattr(self, name) is None]
            extra = [name for name in forbidden if getattr(self, name) is not None]
            if missing or extra:
                raise ValueError(
                    f"an {self.kty} key has {', '.join(required)} and no {', '.join(forbidden)}"
                    f" (missing: {', '.join(missing) or 'none'}; not allowed: {', '.join(extra) or 'none'})"
                )
        return self


# kty -> (members it needs, members it must not have); the schema's if/then says the same.
_JWK_MEMBERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "RSA": (("n", "e"), ("crv", "x", "y")),
    "EC": (("crv", "x", "y"), ("n", "e")),
    "OKP": (("crv", "x"), ("n", "e", "y")),
}


class Jwks(Model):
    """A JWK Set (RFC 7517 §5) written in the manifest: the partner's public signing keys."""

    keys: Annotated[list[Jwk], Field(min_length=1, max_length=MAX_JWKS_KEYS)]


class Auth(Model):
    method: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    # None (not written) means client_secret. Kept None rather than defaulted so that the applied spec
    # (model_dump(exclude_none=True)) of a partner that never wrote it does not change.
    clientAuthentication: ClientAuthenticationMethod | None = None
    jwks: Jwks | None = None
    jwksUri: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None

    @property
    def client_authentication(self) -> ClientAuthenticationMethod:
        """The method in force: ``client_secret`` unless ``private_key_jwt`` is written."""
        return self.clientAuthentication or DEFAULT_CLIENT_AUTHENTICATION

    @model_validator(mode="after")
    def _keys_with_private_key_jwt_only(self) -> Auth:
        given = [name for name in ("jwks", "jwksUri") if getattr(self, name) is not None]
        if self.clientAuthentication == "private_key_jwt":
            if len(given) != 1:
                raise ValueError(
                    "clientAuthentication private_key_jwt needs exactly one of jwks (the public keys) "
                    "or jwksUri (where the partner publishes them)"
                )
        elif given:
            raise ValueError(f"{given[0]} is only for clientAuthentication: private_key_jwt")
        return self


def client_authentication_of(spec: collections.abc.Mapping[str, Any]) -> ClientAuthenticationMethod:
    """The method in force for an applied spec as JSON (``record.spec``): ``client_secret`` when not written."""
    auth = spec.get("auth")
    method = auth.get("clientAuthentication") if isinstance(auth, collections.abc.Mapping) else None
    return "private_key_jwt" if method == "private_key_jwt" else DEFAULT_CLIENT_AUTHENTICATION


class Residency(Model):
    region: Region


class Webhook(Model):
    name: DnsLabel
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    events: Annotated[list[EventName], Field(min_length=1)]
    mapping: DnsLabel | None = None
    description: Text | None = None


class Mapping(Model):
    name: DnsLabel
    event: EventName
    fields: Annotated[dict[FieldName, PartnerFieldName], Field(min_length=1)]


class AccessReview(Model):
    reviewedOn: IsoDate


class PartnerSpec(Model):
    organization: Organization
    legalBasis: LegalBasis | None = None
    contacts: Annotated[list[Contact], Field(min_length=1)]
    auth: Auth
    scopes: Annotated[list[ScopeName], Field(min_length=1)]
    residency: Residency
    webhooks: list[Webhook] = Field(default_factory=list)
    mappings: list[Mapping] = Field(default_factory=list)
    accessReview: AccessReview | None = None
    suspended: bool = False

    @field_validator("contacts")
    @classmethod
    def _has_tech_lead(cls, contacts: list[Contact]) -> list[Contact]:
        if not any(contact.role == "tech-lead" for contact in contacts):
            raise ValueError("needs at least one contact with role tech-lead (the technical focal point)")
        return contacts


class IntegrationPartner(Model):
    apiVersion: Literal["partners.scp.dev/v1"]
    kind: Literal["IntegrationPartner"]
    metadata: PartnerMetadata
    spec: PartnerSpec

    @property
    def key(self) -> str:
        """``tenant/name``: how plans, status and the CLI name a partner."""
        return f"{self.metadata.tenant}/{self.metadata.name}"


# --- ScopeCatalog ---------------------------------------------------------------------------------


class Route(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: Annotated[str, StringConstraints(pattern=r"^(/([A-Za-z0-9._~-]+|\{[a-z][A-Za-z0-9_]*\}))+$")]


class Scope(Model):
    name: ScopeName
    description: Text
    classification: ClassificationName
    routes: list[Route] = Field(default_factory=list)

    @property
    def level(self) -> Classification:
        return Classification[self.classification]


class EventType(Model):
    name: EventName
    description: Text | None = None
    scope: ScopeName
    fields: Annotated[dict[FieldName, ClassificationName], Field(min_length=1)]


class NamedMetadata(Model):
    name: DnsLabel
    labels: StringMap = Field(default_factory=dict)
    annotations: StringMap = Field(default_factory=dict)


class CatalogSpec(Model):
    scopes: Annotated[list[Scope], Field(min_length=1)]
    events: list[EventType] = Field(default_factory=list)


class ScopeCatalog(Model):
    apiVersion: Literal["partners.scp.dev/v1"]
    kind: Literal["ScopeCatalog"]
    metadata: NamedMetadata
    spec: CatalogSpec

    def scope(self, name: str) -> Scope | None:
        return self._scopes.get(name)

    def event(self, name: str) -> EventType | None:
        return self._events.get(name)

    @cached_property
    def _scopes(self) -> dict[str, Scope]:
        return {scope.name: scope for scope in self.spec.scopes}

    @cached_property
    def _events(self) -> dict[str, EventType]:
        return {event.name: event for event in self.spec.events}

    def clearance(self, scopes: list[str]) -> Classification:
        """The highest classification among known ``scopes`` (anonymous when none is known)."""
        levels = [found.level for name in scopes if (found := self.scope(name)) is not None]
        return max(levels, default=Classification.anonymous)


# --- TenantPolicy and TrustRoot -------------------------------------------------------------------


class Approver(Model):
    name: Text
    email: Email
    github: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}$")] | None = None
    sshKey: Annotated[str, StringConstraints(pattern=SSH_KEY_PATTERN)] | None = None

    @model_validator(mode="after")
    def _has_evidence(self) -> Approver:
        if self.sshKey is None and self.github is None:
            raise ValueError("an approver needs sshKey (git approvals) or github (GitHub reviews), or both")
        return self


class PersonalData(Model):
    allowedOrganizationTypes: list[OrganizationType] = Field(default_factory=list)
    requireLegalBasis: bool = True


class TenantResidency(Model):
    allowedRegions: Annotated[list[Region], Field(min_length=1)]


class CredentialPolicy(Model):
    rotationDays: Annotated[Int, Field(ge=1, le=365)] = 90
    overlapDays: Annotated[Int, Field(ge=0, le=90)] = 7


class WebhookPolicy(Model):
    maxConsecutiveFailures: Annotated[Int, Field(ge=1, le=1000)] = 5
    onFailure: Literal["flag", "deactivate"] = "deactivate"


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("lists each method once")
    return values


class GatewayPolicy(Model):
    """Per-partner rate limit at the gateway (DESIGN §7): a token bucket refilled requestsPerMinute, holding burst."""

    requestsPerMinute: Annotated[Int, Field(ge=1, le=100_000)] = 600
    burst: Annotated[Int, Field(ge=1, le=10_000)] = 100


class AccessReviewPolicy(Model):
    """How often a partner's access is reviewed, and what an overdue review does (DESIGN §12)."""

    reviewDays: Annotated[Int, Field(ge=1, le=3650)] = 90
    onOverdue: Literal["flag", "suspend"] = "flag"
    unusedScopeDays: Annotated[Int, Field(ge=1, le=3650)] = 90


class TenantPolicySpec(Model):
    approvers: Annotated[list[Approver], Field(min_length=1)]
    allowedScopes: list[ScopeName]
    personalData: PersonalData = Field(default_factory=PersonalData)
    residency: TenantResidency
    credentials: CredentialPolicy = Field(default_factory=CredentialPolicy)
    webhooks: WebhookPolicy = Field(default_factory=WebhookPolicy)
    clientAuthentication: Annotated[list[ClientAuthenticationMethod], Field(min_length=1), AfterValidator(_unique)] = (
        Field(default_factory=lambda: list(CLIENT_AUTHENTICATION_METHODS))
    )
    gateway: GatewayPolicy = Field(default_factory=GatewayPolicy)
    accessReview: AccessReviewPolicy = Field(default_factory=AccessReviewPolicy)


class TenantPolicy(Model):
    apiVersion: Literal["partners.scp.dev/v1"]
    kind: Literal["TenantPolicy"]
    metadata: NamedMetadata
    spec: TenantPolicySpec


class TrustRootSpec(Model):
    approvers: Annotated[list[Approver], Field(min_length=1)]


class TrustRoot(Model):
    apiVersion: Literal["partners.scp.dev/v1"]
    kind: Literal["TrustRoot"]
    metadata: NamedMetadata
    spec: TrustRootSpec


Manifest = IntegrationPartner | ScopeCatalog | TenantPolicy | TrustRoot

MODELS: dict[str, type[IntegrationPartner] | type[ScopeCatalog] | type[TenantPolicy] | type[TrustRoot]] = {
    "IntegrationPartner": IntegrationPartner,
    "ScopeCatalog": ScopeCatalog,
    "TenantPolicy": TenantPolicy,
    "TrustRoot": TrustRoot,
}
