"""DESIGN's words as types: phases, health, webhook and credential states, actions, audit events.

Each is a ``StrEnum``: it compares equal to its text and serialises as it, so JSON output and stored
records read exactly as before, while the code can no longer misspell a phase.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActionName",
    "BlockedReason",
    "CredentialState",
    "DeliveryStatus",
    "Event",
    "Health",
    "Phase",
    "WebhookState",
]


class Phase(StrEnum):
    """Where a partner is in its lifecycle (DESIGN §9)."""

    PENDING_APPROVAL = "PENDING_APPROVAL"
    PROVISIONING = "PROVISIONING"
    AWAITING_HANDSHAKE = "AWAITING_HANDSHAKE"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DECOMMISSIONED = "DECOMMISSIONED"


class Health(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNKNOWN = "UNKNOWN"


class WebhookState(StrEnum):
    """How a webhook's endpoint has been answering (LOG-01, DESIGN §8)."""

    ACTIVE = "active"
    FAILING = "failing"
    FLAGGED = "flagged"
    DEACTIVATED = "deactivated"


class CredentialState(StrEnum):
    """One generation of a client secret: the current one, one still valid in its overlap, or revoked."""

    ACTIVE = "active"
    PREVIOUS = "previous"
    REVOKED = "revoked"


class ActionName(StrEnum):
    """The plan's actions (DESIGN §5), in the order a partner's actions are applied."""

    REGISTER_PARTNER = "register-partner"
    UPDATE_PARTNER = "update-partner"
    SUSPEND_PARTNER = "suspend-partner"
    REVOKE_CREDENTIAL = "revoke-credential"
    ISSUE_CREDENTIAL = "issue-credential"
    ROTATE_CREDENTIAL = "rotate-credential"
    REGISTER_WEBHOOK = "register-webhook"
    UPDATE_WEBHOOK = "update-webhook"
    REMOVE_WEBHOOK = "remove-webhook"
    DECOMMISSION_PARTNER = "decommission-partner"
    CHECK_CONNECTIVITY = "check-connectivity"  # listed apart, as a check (not a change)


class BlockedReason(StrEnum):
    """Why a change is not applied (``blocked.reason``, DESIGN §11)."""

    AWAITING_APPROVAL = "awaiting-approval"
    MISSING_POLICY_DOCUMENT = "missing-policy-document"
    APPROVER_NOT_AUTHORISED = "approver-not-authorised"
    INVALID_SIGNATURE = "invalid-signature"
    INVALID_MANIFEST = "invalid-manifest"
    INVALID_TENANT_POLICY = "invalid-tenant-policy"


class DeliveryStatus(StrEnum):
    """A webhook delivery in the outbox."""

    PENDING = "pending"
    REPLAYING = "replaying"  # sent again on request (a replay): pending in a lane of its own, after live ones
    DELIVERED = "delivered"
    FAILED = "failed"
    HELD = "held"  # the webhook is deactivated: it waits for a successful ping
    CANCELLED = "cancelled"


class Event(StrEnum):
    """Audit event names (DESIGN §9)."""

    PARTNER_REGISTERED = "partner.registered"
    PARTNER_UPDATED = "partner.updated"
    PARTNER_SUSPENDED = "partner.suspended"
    PARTNER_DECOMMISSIONED = "partner.decommissioned"
    APPROVAL_RECORDED = "approval.recorded"
    CREDENTIAL_ISSUED = "credential.issued"
    CREDENTIAL_DELIVERED = "credential.delivered"
    CREDENTIAL_DELIVERY_REFUSED = "credential.delivery_refused"
    CREDENTIAL_ROTATED = "credential.rotated"
    CREDENTIAL_REVOKED = "credential.revoked"
    HANDSHAKE_VERIFIED = "handshake.verified"
    ACCESS_DENIED = "access.denied"
    WEBHOOK_REGISTERED = "webhook.registered"
    WEBHOOK_FAILING = "webhook.failing"
    WEBHOOK_FLAGGED = "webhook.flagged"
    WEBHOOK_DEACTIVATED = "webhook.deactivated"
    WEBHOOK_RECOVERED = "webhook.recovered"
    WEBHOOK_REPLAYED = "webhook.replayed"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"  # noqa: S105 - an event name
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 - an event name
    REVIEW_OVERDUE = "review.overdue"
    REVIEW_RECORDED = "review.recorded"
