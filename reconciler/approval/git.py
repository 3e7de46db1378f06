"""``--approval git``: approvals are SSH-signed commits on the first-parent history (DESIGN §4).

An approval commit ``C`` approves exactly the partner and policy files changed between ``C^1`` and
``C`` (for a merge: the pull request's changes). It counts when its SSH signature is good, the key
belongs to an approver allowed for every such file as of ``C^1``, and its message carries the
trailers ``Approved-by: <that approver's email>`` and ``Policy-Document: <ID>``:

- partner files need an approver of the newest *approved* version of their tenant's policy in the
  history before ``C`` — so a pull request cannot approve itself by adding its author, and an
  unapproved policy edit empowers nobody;
- tenant policies and the scope catalog need an approver of the trust root, read out of band.

The history is read with two ``git log`` runs (changes, then signatures checked by git against an
allowed-signers file of every key that could matter); each file's newest approved version is then
found in one pass, oldest commit first.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.approval.gate import ApprovalRecord, Approved, Refused, Verdict
from reconciler.backends.git import Revision
from reconciler.manifests.loader import YamlProblem, load_document
from reconciler.manifests.models import Approver, TenantPolicy, TrustRoot
from reconciler.manifests.validation import CATALOG_PATH, PARTNERS_DIR, POLICIES_DIR, is_manifest_path

_TRAILER = re.compile(r"^(Approved-by|Policy-Document):[ \t]*(\S.*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_EMAIL_IN = re.compile(r"<?([^<>\s]+@[^<>\s]+)>?")
_EMPTY_BLOB = "0" * 40


def key_fingerprint(public_key: str) -> str:
    """``SHA256:…`` as ssh-keygen and git print it, from an authorized_keys line."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    date: str
    message: str
    changes: dict[str, str]  # path -> new blob ('0'*40 when deleted)


@dataclass(frozen=True)
class Signature:
    status: str  # git's %G?: G good, B bad, U good but unknown key, E cannot check, N none
    fingerprint: str


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

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[str, str] | ApprovalRecord:
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
                verdicts[path] = Refused("awaiting-approval", f"{path} has never been approved", None)
        return verdicts

    # --- the walk ---------------------------------------------------------------------------------

    def _walk(self, revision: Revision) -> _History:
        commits = [commit for commit in _first_parent_changes(revision) if any(map(is_manifest_path, commit.changes))]
        self.prepare(revision, commits)
        history = _History()
        for commit in commits:
            for path, blob in commit.changes.items():
                if not is_manifest_path(path):
                    continue
                allowed, who = self._allowed_for(path, history, revision)
                verdict = self.judge(commit, allowed, who)
                if isinstance(verdict, ApprovalRecord):
                    history.approved[path] = Approved(None if blob == _EMPTY_BLOB else blob, verdict)
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
            approvers = _policy_approvers(revision, approved.blob) if approved and approved.blob else []
            return approvers, f"a Tenant Admin of {tenant}"
        return list(self.trust_root.spec.approvers), "a platform owner (trust root)"


def names_of(approvers: list[Approver]) -> str:
    return ", ".join(f"{approver.name} <{approver.email}>" for approver in approvers) or "nobody yet"


class GitApproval(HistoryGate):
    """Approvals are SSH-signed commits with Approved-by and Policy-Document trailers."""

    mode = "git"

    def prepare(self, revision: Revision, commits: list[Commit]) -> None:
        self._signatures = _signatures(revision, self._allowed_signers(revision, commits))

    def judge(self, commit: Commit, allowed: list[Approver], who: str) -> tuple[str, str] | ApprovalRecord:
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
                if path.startswith(POLICIES_DIR + "/") and path != CATALOG_PATH and blob != _EMPTY_BLOB:
                    approvers.extend(_policy_approvers(revision, blob))
        lines = {
            f"{approver.email} {' '.join(approver.sshKey.split()[:2])}" for approver in approvers if approver.sshKey
        }
        return "\n".join(sorted(lines)) + "\n"


def _judge(commit: Commit, signature: Signature, allowed: dict[str, Approver], who: str) -> tuple[str, str] | None:
    """None when ``commit`` validly approves a file that ``allowed`` may approve; else (reason, message)."""
    needs = f"it needs a signed approval by {who}: {names_of(list(allowed.values()))}"
    trailers = _trailers(commit.message)
    if signature.status == "N":
        if "approved-by" in trailers:
            return "invalid-signature", f"claims Approved-by but the commit is not signed; {needs}"
        return "awaiting-approval", f"not approved; {needs} (partnerctl approve)"
    if signature.status in ("B", "E", "X", "Y", "R"):
        return "invalid-signature", f"the commit's signature does not verify; {needs}"
    approver = allowed.get(signature.fingerprint)
    if approver is None:
        return "approver-not-authorised", f"signed by a key that is not {who}'s; {needs}"
    claimed = _email(trailers.get("approved-by", ""))
    if claimed is None or claimed.lower() != approver.email.lower():
        return "approver-not-authorised", (
            f"signed by {approver.email} but Approved-by says {claimed or 'nothing'}; "
            f"add the trailer Approved-by: {approver.email}"
        )
    if not trailers.get("policy-document"):
        return "missing-policy-document", "approved without a Policy-Document: <ID> trailer naming the policy document"
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


_POLICY_CACHE: dict[str, list[Approver]] = {}


def _policy_approvers(revision: Revision, blob: str) -> list[Approver]:
    """Approvers of a tenant policy version; none when that version is not a valid policy."""
    if blob not in _POLICY_CACHE:
        try:
            policy = TenantPolicy.model_validate(load_document(revision.read_blob(blob)).data)
            _POLICY_CACHE[blob] = list(policy.spec.approvers)
        except (YamlProblem, ValueError):
            _POLICY_CACHE[blob] = []
    return _POLICY_CACHE[blob]


def _first_parent_changes(revision: Revision) -> list[Commit]:
    """Commits of the first-parent chain, oldest first, with the files each changed against its first parent."""
    output = revision.repo.git.log(
        "--first-parent", "--diff-merges=first-parent", "--reverse", "--raw", "--no-abbrev", "--no-renames",
        "--format=%x1e%H %P%x1f%cI%x1f%B%x1d", revision.sha,
    )  # fmt: skip
    commits = []
    for chunk in output.split("\x1e")[1:]:
        header, _, rest = chunk.partition("\x1f")
        date, _, rest = rest.partition("\x1f")
        message, _, raw = rest.partition("\x1d")
        sha, *parents = header.split()
        changes: dict[str, str] = {}
        for line in raw.splitlines():
            if line.startswith(":") and "\t" in line:
                meta, path = line.split("\t", 1)
                changes[path] = meta.split()[3]
        commits.append(Commit(sha, tuple(parents), date, message, changes))
    return commits


def _signatures(revision: Revision, allowed_signers: str) -> dict[str, Signature]:
    with tempfile.NamedTemporaryFile("w", prefix="partnerctl-signers-", suffix=".txt") as handle:
        handle.write(allowed_signers)
        handle.flush()
        output = revision.repo.git.execute(
            ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={Path(handle.name)}",
             "log", "--first-parent", "--format=%H%x1f%G?%x1f%GF", revision.sha],
        )  # fmt: skip
    signatures = {}
    for line in str(output).splitlines():
        sha, status, fingerprint = [*line.split("\x1f"), "", ""][:3]
        signatures[sha] = Signature(status, fingerprint)
    return signatures


def load_trust_root(path: Path) -> tuple[TrustRoot, str]:
    """The TrustRoot file and a digest of its content."""
    raw = path.read_bytes()
    return TrustRoot.model_validate(load_document(raw).data), hashlib.sha256(raw).hexdigest()
