"""The desired state: for every partner, the newest approved and valid version of its manifest.

Validation results are memoised in the journal's memo by the blob SHAs of the partner file, the scope
catalog and the tenant policy (plus today's date, for LEGAL-01), so an unchanged file is never
parsed or validated twice. A partner whose approved blob and context equal what was applied is not
even read: the planner works from the applied record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reconciler.approval.gate import ApprovalGate, ApprovalRecord, Approved, Refused
from reconciler.manifests.models import IntegrationPartner, TenantPolicy
from reconciler.manifests.validation import CATALOG_PATH, PARTNERS_DIR, POLICIES_DIR, Validator
from reconciler.stores.journal import MemoStore
from reconciler.stores.records import PartnerRecord
from reconciler.stores.source import Revision
from reconciler.vocabulary import BlockedReason

__all__ = ["VALIDATION_VERSION", "BlockedPartner", "DesiredPartner", "DesiredState", "build", "partner_key"]

# Bump when validation rules change, so memoised verdicts are recomputed.
VALIDATION_VERSION = "2"


@dataclass(frozen=True)
class DesiredPartner:
    key: str
    path: str
    blob: str
    context: str
    approval: ApprovalRecord
    # The validated spec as compact JSON (a tenth of the memory of its model, for 10,000 partners);
    # None when the approved version is the one already applied: nothing was parsed.
    spec_document: str | None = None
    policy: TenantPolicy | None = None

    @property
    def read(self) -> bool:
        """Whether this version was read (validated) in this plan, rather than being the applied one."""
        return self.spec_document is not None

    def spec(self) -> dict[str, Any] | None:
        return json.loads(self.spec_document) if self.spec_document is not None else None


def spec_document(manifest: IntegrationPartner) -> str:
    """A validated manifest's spec, as DesiredPartner keeps it."""
    return compact_spec(manifest.spec.model_dump(mode="json", exclude_none=True))


def compact_spec(spec: dict[str, Any]) -> str:
    return json.dumps(spec, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class BlockedPartner:
    key: str
    reason: BlockedReason
    message: str
    never_approved: bool = False


@dataclass
class DesiredState:
    revision: str
    partners: dict[str, DesiredPartner] = field(default_factory=dict)
    blocked: dict[str, BlockedPartner] = field(default_factory=dict)
    deleted: dict[str, ApprovalRecord] = field(default_factory=dict)
    catalog: dict[str, Any] | None = None  # the approved scope catalog, published for the gateway
    # Each tenant's approvers as its approved policy lists them, published for the console (who sees which
    # tenant) and its pending page (who may approve); None when this plan read no policy.
    approvers: dict[str, list[dict[str, str]]] | None = None


# Fresh validation results are memoised this many at a time.
MEMO_FLUSH = 1000


def partner_key(path: str) -> str:
    """``partners/<tenant>/<name>.yaml`` -> ``<tenant>/<name>``."""
    _, tenant, file = path.split("/", 2)
    return f"{tenant}/{file.rsplit('.', 1)[0]}"


def partner_path_candidates(key: str) -> tuple[str, str]:
    return f"{PARTNERS_DIR}/{key}.yaml", f"{PARTNERS_DIR}/{key}.yml"


class _ApprovedTree:
    """The repository as approved: each path reads its approved blob (validation.Tree)."""

    def __init__(self, revision: Revision, verdicts: dict[str, Approved | Refused]) -> None:
        self._revision = revision
        self._blobs: dict[str, str] = {}
        for path, verdict in verdicts.items():
            approved = verdict if isinstance(verdict, Approved) else verdict.fallback
            if approved is not None and approved.blob is not None:
                self._blobs[path] = approved.blob

    def blob(self, path: str) -> str | None:
        return self._blobs.get(path)

    def read(self, path: str) -> bytes | None:
        blob = self._blobs.get(path)
        return None if blob is None else self._revision.read_blob(blob)

    def manifest_paths(self) -> list[str]:
        return sorted(self._blobs)


def build(
    revision: Revision,
    gate: ApprovalGate,
    records: dict[str, PartnerRecord],
    memo: MemoStore,
    *,
    today: date,
    allow_loopback_webhooks: bool,
) -> DesiredState:
    """Approve, validate and collect the desired state of every partner at ``revision``."""
    desired = DesiredState(revision=revision.sha)
    live_paths = {
        path for key, record in records.items() if not record.decommissioned for path in partner_path_candidates(key)
    }
    paths = set(revision.blobs) | {path for path in live_paths if path.startswith(PARTNERS_DIR)}
    paths |= {CATALOG_PATH} | {f"{POLICIES_DIR}/{record.tenant}.yaml" for record in records.values()}
    verdicts = gate.review(revision, paths)
    tree = _ApprovedTree(revision, verdicts)
    validator = Validator(tree, today=today, allow_loopback_webhooks=allow_loopback_webhooks)
    catalog = validator.catalog()
    if catalog is not None:
        desired.catalog = catalog.model_dump(mode="json", exclude_none=True)
    flags = f"{today.isoformat()}|{int(allow_loopback_webhooks)}|{VALIDATION_VERSION}"
    desired.approvers = _approvers(tree, validator)

    partner_paths = sorted(path for path in paths if path.startswith(PARTNERS_DIR + "/") and path.count("/") == 2)
    by_key: dict[str, list[str]] = {}
    for path in partner_paths:
        by_key.setdefault(partner_key(path), []).append(path)

    pending: dict[str, tuple[str, str, str, Approved]] = {}  # key -> (path, blob, context, approved)
    for key, key_paths in sorted(by_key.items()):
        record = records.get(key)
        present = [path for path in key_paths if path in revision.blobs]
        if len(present) > 1:
            message = f"{key} is defined twice ({', '.join(present)}); keep one file"
            desired.blocked[key] = BlockedPartner(key, BlockedReason.INVALID_MANIFEST, message, record is None)
            _keep_applied(desired, key, record)
            continue
        path = present[0] if present else key_paths[0]
        verdict = verdicts.get(path)
        approved: Approved | None
        if isinstance(verdict, Refused):
            desired.blocked[key] = BlockedPartner(key, verdict.reason, verdict.message, verdict.fallback is None)
            approved = verdict.fallback
        else:
            approved = verdict
        if approved is None:
            _keep_applied(desired, key, record)
            continue
        if approved.blob is None:
            if record is not None and not record.decommissioned:
                desired.deleted[key] = approved.record
            continue
        tenant = key.split("/", 1)[0]
        policy_path = f"{POLICIES_DIR}/{tenant}.yaml"
        context = hashlib.sha256(
            f"{tree.blob(CATALOG_PATH)}|{tree.blob(policy_path)}|{int(allow_loopback_webhooks)}".encode()
        ).hexdigest()[:32]
        unchanged = (
            record is not None
            and not record.decommissioned
            and record.blob == approved.blob
            and record.context == context
            and (record.legal_expires_on is None or record.legal_expires_on >= today.isoformat())
        )
        if unchanged:
            desired.partners[key] = DesiredPartner(key, path, approved.blob, context, approved.record)
        else:
            pending[key] = (path, approved.blob, context, approved)

    _validate_pending(desired, pending, validator, memo, records, flags)
    return desired


def _approvers(tree: _ApprovedTree, validator: Validator) -> dict[str, list[dict[str, str]]]:
    approvers: dict[str, list[dict[str, str]]] = {}
    for path in tree.manifest_paths():
        folder, _, file = path.partition("/")
        if folder != POLICIES_DIR or path == CATALOG_PATH or "/" in file or not file.endswith((".yaml", ".yml")):
            continue
        policy = validator.tenant_policy(file.rsplit(".", 1)[0]).policy
        if policy is not None:
            approvers[policy.metadata.name] = [
                {"name": person.name, "email": person.email, **({"github": person.github} if person.github else {})}
                for person in policy.spec.approvers
            ]
    return approvers


def _validate_pending(
    desired: DesiredState,
    pending: dict[str, tuple[str, str, str, Approved]],
    validator: Validator,
    memo_store: MemoStore,
    records: dict[str, PartnerRecord],
    flags: str,
) -> None:
    memo_keys = {key: f"validate|{blob}|{context}|{flags}" for key, (_, blob, context, _) in pending.items()}
    memo = memo_store.cached(list(memo_keys.values()))
    fresh: dict[str, object] = {}
    for key, (path, blob, context, approved) in sorted(pending.items()):
        memo_key = memo_keys[key]
        tenant = key.split("/", 1)[0]
        status = validator.tenant_policy(tenant)
        if status.invalid:
            assert status.problem is not None
            desired.blocked[key] = BlockedPartner(
                key, BlockedReason.INVALID_TENANT_POLICY, status.problem, records.get(key) is None
            )
            _keep_applied(desired, key, records.get(key))
            continue
        cached = memo.get(memo_key)
        if cached is None:
            manifest, violations = validator.check_partner(path)
            cached = (
                {"manifest": manifest.model_dump(mode="json", exclude_none=True)}
                if manifest is not None and not violations
                else {"violations": [violation.to_json() for violation in violations]}
            )
            fresh[memo_key] = cached
            if len(fresh) >= MEMO_FLUSH:  # written as it goes: a first validation of 10,000 files stays small
                memo_store.cache(fresh)
                fresh = {}
        if "manifest" in cached:
            IntegrationPartner.model_validate(cached["manifest"])  # the memo is checked like a file
            document = compact_spec(cached["manifest"]["spec"])
            desired.partners[key] = DesiredPartner(key, path, blob, context, approved.record, document, status.policy)
        else:
            first = cached["violations"][0] if cached["violations"] else {}
            count = len(cached["violations"])
            message = (
                f"{count} violation{'s' if count != 1 else ''}; first: {first.get('file')}:{first.get('line')}: "
                f"{first.get('code')} {first.get('message')} (run partnerctl validate)"
            )
            never_approved = records.get(key) is None
            desired.blocked[key] = BlockedPartner(key, BlockedReason.INVALID_MANIFEST, message, never_approved)
            _keep_applied(desired, key, records.get(key))
    memo_store.cache(fresh)


def _keep_applied(desired: DesiredState, key: str, record: PartnerRecord | None) -> None:
    """A blocked change leaves the applied version live: plan keeps working from its record."""
    if record is None or record.decommissioned or record.blob is None or record.approval is None:
        return
    approval = ApprovalRecord.from_json(record.approval)
    path = partner_path_candidates(key)[0]
    desired.partners[key] = DesiredPartner(key, path, record.blob, record.context or "", approval)
