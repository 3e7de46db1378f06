"""The approval gate: which version of each manifest file is approved to be live.

Plan and apply consult an :class:`ApprovalGate` for every partner and policy path. It answers
with the newest approved version (:class:`Approved`, whose ``blob`` is None for an approved
deletion) or a :class:`Refused` change carrying one of DESIGN §11's ``blocked`` reasons and,
when there is one, the version approved before it, which stays live.

``--approval none`` (:class:`NoApproval`) approves every committed change without checking
anything; it is for trials and prints a warning on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.stores.source import Revision
from reconciler.vocabulary import BlockedReason

__all__ = ["ApprovalGate", "ApprovalRecord", "Approved", "NoApproval", "Refused", "Verdict"]


@dataclass(frozen=True)
class ApprovalRecord:
    """Who approved which commit, under which policy document, when."""

    commit: str
    approver: str | None
    policy_document: str | None
    approved_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "approver": self.approver,
            "policyDocument": self.policy_document,
            "approvedAt": self.approved_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalRecord:
        return cls(data["commit"], data.get("approver"), data.get("policyDocument"), data["approvedAt"])


@dataclass(frozen=True)
class Approved:
    blob: str | None  # None: the file's deletion is approved
    record: ApprovalRecord


@dataclass(frozen=True)
class Refused:
    reason: BlockedReason
    message: str
    fallback: Approved | None = None  # the version approved before the refused change


Verdict = Approved | Refused


class ApprovalGate(Protocol):
    mode: str

    def fingerprint(self) -> str | None:
        """What, besides the commit, decides this gate's verdicts; None if a plan must never be memoised."""

    def review(self, revision: Revision, paths: set[str]) -> dict[str, Verdict]:
        """A verdict for every path: present at ``revision`` or known to live state."""

    def warning(self) -> str | None:
        """A warning to print on every run, if the mode deserves one."""


class NoApproval:
    """Approves every committed change as it is at the revision. Nothing is verified."""

    mode = "none"

    def fingerprint(self) -> str | None:
        return "none"

    def review(self, revision: Revision, paths: set[str]) -> dict[str, Verdict]:
        record = ApprovalRecord(
            commit=revision.sha,
            approver=None,
            policy_document=None,
            approved_at=revision.committed_at,
        )
        return {path: Approved(revision.blob(path), record) for path in paths}

    def warning(self) -> str | None:
        return "warning: --approval none: changes are applied without verifying any approval"
