"""An apply's result back on its pull request (DESIGN §12): the commit status ``partnerctl/apply`` and one comment."""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from reconciler.backends.github import GitHubClient
from reconciler.errors import InvalidState, ReconcilerError
from reconciler.manifests.validation import CATALOG_PATH, PARTNERS_DIR, POLICIES_DIR
from reconciler.stores import Stores
from reconciler.stores.source import Source

__all__ = ["CONTEXT", "MARKER", "SETTING", "GitHubFeedback"]

CONTEXT = "partnerctl/apply"
MARKER = "<!-- partnerctl:apply -->"
SETTING = "github-feedback"  # the journal setting: what is still to send, and what was sent
KEEP = 50  # commits and pull requests remembered; older pending feedback is dropped
MAX_ROWS = 300  # partners listed in a comment (GitHub takes 65,536 characters)


class _Result(Protocol):
    @property
    def partner(self) -> str: ...

    @property
    def ok(self) -> bool: ...


class _Plan(Protocol):
    @property
    def blocked(self) -> list[dict[str, str]]: ...


class _Outcome(Protocol):
    """What is read of :class:`reconciler.engine.reconciler.ApplyOutcome` (backends do not import the engine)."""

    @property
    def revision(self) -> str: ...

    @property
    def results(self) -> Sequence[_Result]: ...

    @property
    def plan(self) -> _Plan | None: ...


class _Engine(Protocol):
    """What is read of :class:`reconciler.engine.reconciler.Reconciler`."""

    @property
    def stores(self) -> Stores: ...

    @property
    def source(self) -> Source | None: ...

    def status(self, partner: str | None = None) -> list[dict[str, Any]]: ...


class GitHubFeedback:
    """An apply listener for ``--approval github``: sets the commit status of the applied commit and keeps one
    comment on the pull request merged as it, with the phase/health of each partner that pull request changed.

    Only what changed is written (the loop's idle passes send nothing). When GitHub fails, a warning goes to
    standard error and the feedback waits in the journal (setting ``github-feedback``) for the next apply;
    nothing here raises out of :meth:`applied` or fails the apply."""

    def __init__(self, client: GitHubClient, *, warn: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.warn = warn or (lambda line: print(line, file=sys.stderr))
        self._changed: dict[str, set[str] | None] = {}  # sha -> partner keys its commit changed (None: all)
        self._idle: tuple[str, str | None, str | None] | None = None  # the inputs of the last pass that sent all

    def apply_failed(self, error: Exception, engine: _Engine) -> None:
        """An apply that stopped early leaves the commit's status as it was: the next apply that finishes sets it."""

    def applied(self, outcome: _Outcome, engine: _Engine) -> None:
        stores = engine.stores
        inputs = (outcome.revision, stores.partners.version(), stores.secrets.version())
        if self._idle == inputs and not outcome.results and None not in inputs:
            return  # the loop's idle pass: nothing changed since everything was sent
        self._idle = None
        try:
            saved = stores.journal.setting(SETTING)
            state = _State.of(saved)
            self._queue(state, outcome, engine)
        except ReconcilerError as error:
            self.warn(f"warning: the pull-request feedback of this apply was not prepared: {error}")
            return
        try:
            self._deliver(state)
        except ReconcilerError as error:  # the client turns httpx's errors into StoreUnavailable
            self.warn(f"warning: GitHub did not take this apply's status or comment ({error}); "
                      "they are sent again on the next apply")  # fmt: skip
        document = state.document()
        try:
            if document != saved:
                stores.journal.put_setting(SETTING, document)
        except ReconcilerError as error:
            self.warn(f"warning: the pull-request feedback was not saved for the next apply: {error}")
            return
        if not state.pending_statuses and not state.pending_comments:
            self._idle = inputs

    # --- what to send (no network) -----------------------------------------------------------------

    def _queue(self, state: _State, outcome: _Outcome, engine: _Engine) -> None:
        """Add this apply's status and comment rows to what is pending; an idle pass (no action) does not
        replace the status its commit already has, so it keeps the counts of the apply that applied it."""
        sha = outcome.revision
        partners = engine.status()
        blocked = {item["partner"]: item["reason"] for item in (outcome.plan.blocked if outcome.plan else [])}
        failed = sum(1 for result in outcome.results if not result.ok)
        verdict = "failure" if failed else "success"
        sent = state.sent_status if state.sent_status.get("sha") == sha else None
        previous = state.pending_statuses.get(sha) or sent
        if previous is None or outcome.results or previous.get("state") != verdict:
            description = _description(len(outcome.results) - failed, failed, len(blocked), partners)
            state.pending_statuses.pop(sha, None)
            state.pending_statuses[sha] = {"sha": sha, "state": verdict, "description": description}
        changed = self._changed_partners(sha, engine.source)
        rows = {entry["partner"]: [str(entry["phase"]), str(entry["health"])] for entry in partners}
        keys = set(rows) | set(blocked) | {key for key in changed or () if not key.endswith("/*")}
        state.pending_comments.pop(sha, None)
        state.pending_comments[sha] = [
            [key, *rows.get(key, ["—", "—"]), blocked.get(key, "")] for key in sorted(keys) if _covers(changed, key)
        ]

    def _changed_partners(self, sha: str, source: Source | None) -> set[str] | None:
        """The partners the commit ``sha`` changes against its first parent (a merge: its pull request's
        changes): their files, and every partner of a tenant whose policy changed; None (all) for the catalog
        or when the repository cannot tell."""
        if sha not in self._changed:
            self._changed[sha] = None
            if source is not None:
                commits = source.revision(sha).first_parent_changes()
                if commits and commits[-1].sha == sha:
                    self._changed[sha] = _partners_of(list(commits[-1].changes))
        return self._changed[sha]

    # --- sending (GitHub) --------------------------------------------------------------------------

    def _deliver(self, state: _State) -> None:
        """Send what is pending, oldest first; stop at the first failure (GitHub is down or refuses us). What
        GitHub refuses as invalid (422: a commit it does not know) can never succeed and is dropped."""
        for sha, status in list(state.pending_statuses.items()):
            try:
                self.client.set_status(sha, status["state"], status["description"], CONTEXT)
            except InvalidState as error:
                self.warn(f"warning: the commit status of {sha[:12]} is dropped: {error}")
            state.sent_status = status  # settled: an idle pass of the same commit does not send it again
            del state.pending_statuses[sha]
        for sha, rows in list(state.pending_comments.items()):
            number = self._pull_number(state, sha)
            if number is not None and rows:
                body = _comment(sha, number, rows)
                digest = hashlib.sha256(body.encode()).hexdigest()
                if state.sent_comments.get(str(number)) != digest:
                    try:
                        comment = self.client.upsert_comment(number, MARKER, body, author=state.login)
                        state.login = comment.author or state.login
                    except InvalidState as error:
                        self.warn(f"warning: the comment on pull request #{number} is dropped: {error}")
                    state.sent_comments.pop(str(number), None)
                    state.sent_comments[str(number)] = digest  # settled, like a dropped status
            del state.pending_comments[sha]

    def _pull_number(self, state: _State, sha: str) -> int | None:
        if sha not in state.pulls:
            pull = self.client.merged_pull_request(sha)
            state.pulls[sha] = int(pull.number) if pull is not None else None
        return state.pulls[sha]


class _State:
    """The journal setting ``github-feedback``: pending statuses and comments (by commit), the comments' digests
    as last written (by pull request), the pull request of each commit, and our GitHub login."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.pending_statuses: dict[str, dict[str, str]] = dict(document.get("pendingStatuses") or {})
        self.pending_comments: dict[str, list[list[str]]] = dict(document.get("pendingComments") or {})
        self.sent_status: dict[str, str] = dict(document.get("sentStatus") or {})
        self.sent_comments: dict[str, str] = dict(document.get("sentComments") or {})
        self.pulls: dict[str, int | None] = dict(document.get("pulls") or {})
        self.login: str | None = document.get("login")

    @classmethod
    def of(cls, document: Any) -> _State:
        return cls(document if isinstance(document, dict) else {})

    def document(self) -> dict[str, Any]:
        return {
            "pendingStatuses": _newest(self.pending_statuses),
            "pendingComments": _newest(self.pending_comments),
            "sentStatus": self.sent_status,
            "sentComments": _newest(self.sent_comments),
            "pulls": _newest(self.pulls),
            "login": self.login,
        }


def _newest(items: dict[str, Any]) -> dict[str, Any]:
    """The last ``KEEP`` entries (dicts keep insertion order; entries are re-inserted when renewed)."""
    return dict(list(items.items())[-KEEP:])


def _covers(changed: set[str] | None, key: str) -> bool:
    return changed is None or key in changed or f"{key.split('/', 1)[0]}/*" in changed


def _partners_of(paths: list[str]) -> set[str] | None:
    """Partner keys of changed partner files, ``tenant/*`` for a changed tenant policy, None for the catalog."""
    if CATALOG_PATH in paths:
        return None
    keys: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if parts[0] == PARTNERS_DIR and len(parts) == 3:
            keys.add(f"{parts[1]}/{parts[2].rsplit('.', 1)[0]}")
        elif parts[0] == POLICIES_DIR and len(parts) == 2:
            keys.add(f"{parts[1].rsplit('.', 1)[0]}/*")
    return keys


def _description(applied: int, failed: int, blocked: int, partners: list[dict[str, Any]]) -> str:
    """``3 actions applied, 0 failed; 12 ACTIVE/HEALTHY, 1 AWAITING_HANDSHAKE/UNKNOWN`` (names no partner)."""
    counts = Counter(f"{entry['phase']}/{entry['health']}" for entry in partners)
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.most_common()) or "no partners"
    held = f", {blocked} blocked" if blocked else ""
    return f"{applied} action{'s' if applied != 1 else ''} applied, {failed} failed{held}; {summary}"


def _comment(sha: str, number: int, rows: list[list[str]]) -> str:
    """The comment: a table of partner, phase, health and blocked reason (names and vocabulary only, no secret)."""
    shown = rows[:MAX_ROWS]
    lines = [
        MARKER,
        "### partnerctl apply",
        "",
        f"Pull request #{number}, merged as `{sha[:12]}`: each partner it changes, as of the latest apply.",
        "",
        "| Partner | Phase | Health | Blocked |",
        "|---|---|---|---|",
        *(f"| `{partner}` | {phase} | {health} | {reason or '—'} |" for partner, phase, health, reason in shown),
        *([f"| … and {len(rows) - len(shown)} more (`partnerctl status`) | | | |"] if len(rows) > len(shown) else []),
        "",
        "<sub>Edited in place by partnerctl on later applies; `partnerctl status` has the details.</sub>",
    ]
    return "\n".join(lines) + "\n"
