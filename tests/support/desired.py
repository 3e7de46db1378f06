"""Desired states built in memory, as the desired-state builder would hand them to the planner."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.approval.gate import ApprovalRecord
from reconciler.engine.desired import DesiredPartner, DesiredState, spec_document
from reconciler.manifests.loader import load_document
from reconciler.manifests.models import IntegrationPartner, TenantPolicy
from tests.support.repo import PARTNER, POLICY, TENANT

START = datetime(2026, 11, 28, 12, tzinfo=UTC)
POLICY_MODEL = TenantPolicy.model_validate(load_document(POLICY.encode()).data)
TEMPLATE = load_document(PARTNER.encode()).data


@dataclass(frozen=True)
class Version:
    """One partner's manifest as an Integration Manager might have written it."""

    name: str
    scopes: tuple[str, ...]
    hooks: tuple[tuple[str, str], ...]  # (webhook name, url)
    suspended: bool

    def manifest(self) -> IntegrationPartner:
        document: dict[str, Any] = json.loads(json.dumps(TEMPLATE))
        document["metadata"]["name"] = self.name
        spec = document["spec"]
        spec["scopes"] = list(self.scopes)
        subscribed = "payment:status:read" in self.scopes
        spec["webhooks"] = [{"name": name, "url": url, "events": ["payment.status.changed"]}
                            for name, url in self.hooks if subscribed]  # fmt: skip
        spec.pop("mappings", None)
        spec["suspended"] = self.suspended
        return IntegrationPartner.model_validate(document)


def desired_of(partners: list[Version], revision: str, *, deleted: tuple[str, ...] = ()) -> DesiredState:
    approval = ApprovalRecord(revision, "alice@msa.example", "DPA-1", START.isoformat())
    desired = DesiredState(revision=revision)
    for version in partners:
        key = f"{TENANT}/{version.name}"
        manifest = version.manifest()
        blob = hashlib.sha1(manifest.model_dump_json().encode()).hexdigest()
        desired.partners[key] = DesiredPartner(key, f"partners/{key}.yaml", blob, "context", approval,
                                               spec_document(manifest), POLICY_MODEL)  # fmt: skip
    for name in deleted:
        desired.deleted[f"{TENANT}/{name}"] = approval
    return desired
