"""Each manifest file's newest approved version on the first-parent history (DESIGN §4).

An approval commit ``C`` approves exactly the partner and policy files changed between ``C^1`` and
``C`` (for a merge: the pull request's changes). Who may approve a file is decided as of ``C^1``:

- partner files need an approver of the newest *approved* version of their tenant's policy in the
  history before ``C`` — so a pull request cannot approve itself by adding its author, and an
  unapproved policy edit empowers nobody;
- tenant policies and the scope catalog need an approver of the trust root, read out of band.

:class:`HistoryGate` walks the history once, oldest commit first; a subclass says what makes one
commit a valid approval (signed commits in :mod:`.git`, pull-request reviews in :mod:`.github`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.approval.gate import ApprovalRecord, Approved, Refused, Verdict
from reconciler.manifests.loader import YamlProblem, load_document
from reconciler.manifests.models import Approver, TenantPolicy, TrustRoot
from reconciler.manifests.validation import PARTNERS_DIR, POLICIES_DIR
from reconciler.stores.source import EMPTY_BLOB, Commit, Revision
from reconciler.vocabulary import BlockedReason

__all__ = ["HistoryGate", "names_of", "policy_approvers"]


@dataclass
class _History:
    approved: dict[str, Approved] = field(default_factory=dict)
    pending: dict[str, Refused] = field(default_factory=dict)


class HistoryGate:
    """Finds each file's newest approved version on the first-parent history; subclasses say what
    makes one commit a valid approval (:meth:`judge`)."""

    mode = "history"

    def __init__(self, trust_root: TrustRoot, *, digest: str) -> None:
        self.trust_root = trust_root
        self._digest = digest

    def fingerprint(self) -> str | None:
        return f"{self.mode}|{self._digest}"

    def warning(self) -> str | None:
        return None

    def prepare(self, revision: Revision, commits: list[Commit]) -> None:
        """Fetch what :meth:`judge` needs for these commits, in bulk."""

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[BlockedReason, str] | ApprovalRecord:
        """The approval ``commit`` gives a file that ``allowed`` may approve, or (reason, message)."""
        raise NotImplementedError

    def review(self, revision: Revision, paths: set[str]) -> dict[str, Verdict]:
        history = self._walk(revision)
        verdicts: dict[str, Verdict] = {}
        for path in paths:
            refused = history.pending.get(path)
            approved = history.approved.get(path)
            if refused is not None and approved is not None and approved.blob == revision.blob(path):
                refused = None  # an unapproved change was undone: what is committed now is approved
            if refused is not None:
                verdicts[path] = Refused(refused.reason, refused.message, approved)
            elif approved is not None:
                verdicts[path] = approved
            else:  # never touched by any commit: nothing to approve, nothing live
                verdicts[path] = Refused(BlockedReason.AWAITING_APPROVAL, f"{path} has never been approved", None)
        return verdicts

    # --- the walk ---------------------------------------------------------------------------------

    def _walk(self, revision: Revision) -> _History:
        commits = [commit for commit in revision.first_parent_changes() if commit.changes]
        self.prepare(revision, commits)
        history = _History()
        for commit in commits:
            for path, blob in commit.changes.items():
                allowed, who = self._allowed_for(path, history, revision)
                verdict = self.judge(commit, allowed, who)
                if isinstance(verdict, ApprovalRecord):
                    history.approved[path] = Approved(None if blob == EMPTY_BLOB else blob, verdict)
                    history.pending.pop(path, None)
                else:
                    reason, message = verdict
                    history.pending[path] = Refused(reason, f"{path} changed in {commit.sha[:12]}: {message}")
        return history

    def _allowed_for(self, path: str, history: _History, revision: Revision) -> tuple[list[Approver], str]:
        """Approvers allowed to approve ``path`` as of the history so far, and how to name them."""
        if path.startswith(PARTNERS_DIR + "/"):
            tenant = path.split("/")[1]
            approved = history.approved.get(f"{POLICIES_DIR}/{tenant}.yaml")
            approvers = policy_approvers(revision, approved.blob) if approved and approved.blob else []
            return approvers, f"a Tenant Admin of {tenant}"
        return list(self.trust_root.spec.approvers), "a platform owner (trust root)"


def names_of(approvers: list[Approver]) -> str:
    return ", ".join(f"{approver.name} <{approver.email}>" for approver in approvers) or "nobody yet"


_POLICY_CACHE: dict[str, list[Approver]] = {}


def policy_approvers(revision: Revision, blob: str) -> list[Approver]:
    """Approvers of a tenant policy version; none when that version is not a valid policy."""
    if blob not in _POLICY_CACHE:
        try:
            policy = TenantPolicy.model_validate(load_document(revision.read_blob(blob)).data)
            _POLICY_CACHE[blob] = list(policy.spec.approvers)
        except (YamlProblem, ValueError):
            _POLICY_CACHE[blob] = []
    return _POLICY_CACHE[blob]
