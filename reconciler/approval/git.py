"""``--approval git``: approvals are SSH-signed commits on the first-parent history (DESIGN §4).

A commit approves the files it changes when its SSH signature is good (git checks it against an
allowed-signers list of every key that could matter), the key belongs to an approver allowed for
the file as of its first parent, and its message carries the trailers ``Approved-by: <that
approver's email>`` and ``Policy-Document: <ID>``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from reconciler.approval.gate import ApprovalRecord
from reconciler.approval.history import HistoryGate, names_of, policy_approvers
from reconciler.manifests.models import Approver
from reconciler.manifests.validation import CATALOG_PATH, POLICIES_DIR
from reconciler.stores.source import EMPTY_BLOB, Commit, Revision, Signature
from reconciler.vocabulary import BlockedReason

__all__ = ["GitApproval", "key_fingerprint"]

_TRAILER = re.compile(r"^(Approved-by|Policy-Document):[ \t]*(\S.*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_EMAIL_IN = re.compile(r"<?([^<>\s]+@[^<>\s]+)>?")


def key_fingerprint(public_key: str) -> str:
    """``SHA256:…`` as ssh-keygen and git print it, from an authorized_keys line."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class GitApproval(HistoryGate):
    """Approvals are SSH-signed commits with Approved-by and Policy-Document trailers."""

    mode = "git"

    def prepare(self, revision: Revision, commits: list[Commit]) -> None:
        self._signatures = revision.signatures(self._allowed_signers(revision, commits))

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[BlockedReason, str] | ApprovalRecord:
        signature = self._signatures.get(commit.sha, Signature("N", ""))
        problem = _judge(commit, signature, _by_key(allowed), who)
        if problem is not None:
            return problem
        trailers = _trailers(commit.message)
        return ApprovalRecord(
            commit=commit.sha,
            approver=_email(trailers.get("approved-by", "")),
            policy_document=trailers.get("policy-document"),
            approved_at=commit.date,
        )

    def _allowed_signers(self, revision: Revision, commits: list[Commit]) -> str:
        """Every key that could approve anything in this history, as git's allowed-signers lines."""
        approvers = list(self.trust_root.spec.approvers)
        for commit in commits:
            for path, blob in commit.changes.items():
                if path.startswith(POLICIES_DIR + "/") and path != CATALOG_PATH and blob != EMPTY_BLOB:
                    approvers.extend(policy_approvers(revision, blob))
        lines = {
            f"{approver.email} {' '.join(approver.sshKey.split()[:2])}" for approver in approvers if approver.sshKey
        }
        return "\n".join(sorted(lines)) + "\n"


def _judge(
    commit: Commit, signature: Signature, allowed: dict[str, Approver], who: str
) -> tuple[BlockedReason, str] | None:
    """None when ``commit`` validly approves a file that ``allowed`` may approve; else (reason, message)."""
    needs = f"it needs a signed approval by {who}: {names_of(list(allowed.values()))}"
    trailers = _trailers(commit.message)
    if signature.status == "N":
        if "approved-by" in trailers:
            return BlockedReason.INVALID_SIGNATURE, f"claims Approved-by but the commit is not signed; {needs}"
        return BlockedReason.AWAITING_APPROVAL, f"not approved; {needs} (partnerctl approve)"
    if signature.status in ("B", "E", "X", "Y", "R"):
        return BlockedReason.INVALID_SIGNATURE, f"the commit's signature does not verify; {needs}"
    approver = allowed.get(signature.fingerprint)
    if approver is None:
        return BlockedReason.APPROVER_NOT_AUTHORISED, f"signed by a key that is not {who}'s; {needs}"
    claimed = _email(trailers.get("approved-by", ""))
    if claimed is None or claimed.lower() != approver.email.lower():
        return BlockedReason.APPROVER_NOT_AUTHORISED, (
            f"signed by {approver.email} but Approved-by says {claimed or 'nothing'}; "
            f"add the trailer Approved-by: {approver.email}"
        )
    if not trailers.get("policy-document"):
        missing = "approved without a Policy-Document: <ID> trailer naming the policy document"
        return BlockedReason.MISSING_POLICY_DOCUMENT, missing
    return None


def _trailers(message: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in _TRAILER.findall(message):
        found.setdefault(name.lower(), value)
    return found


def _email(value: str) -> str | None:
    match = _EMAIL_IN.search(value)
    return match.group(1) if match else None


def _by_key(approvers: list[Approver]) -> dict[str, Approver]:
    found = {}
    for approver in approvers:
        if approver.sshKey:
            try:
                found[key_fingerprint(approver.sshKey)] = approver
            except (ValueError, IndexError):
                continue
    return found
