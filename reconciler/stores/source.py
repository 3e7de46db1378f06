"""The desired state's source: the partner repository at a revision, and its approval history.

The git adapter (:mod:`reconciler.backends.git`) implements these; the core reads manifests and
history only through them, so it never runs git itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["EMPTY_BLOB", "Commit", "Revision", "Signature", "Source"]

EMPTY_BLOB = "0" * 40  # the blob a deleted file changes to


@dataclass(frozen=True)
class Commit:
    """A commit of the first-parent history and the files it changed against its first parent."""

    sha: str
    parents: tuple[str, ...]
    date: str  # committer date, ISO 8601
    message: str
    changes: dict[str, str]  # path -> new blob (EMPTY_BLOB when deleted)


@dataclass(frozen=True)
class Signature:
    """A commit's signature as git judged it against an allowed-signers list."""

    status: str  # git's %G?: G good, B bad, U good but unknown key, E cannot check, N none
    fingerprint: str


class Revision(Protocol):
    """The manifest files of one commit (a ``manifests.validation.Tree``) and the history behind it."""

    @property
    def sha(self) -> str: ...

    @property
    def committed_at(self) -> str:
        """The commit's committer date, ISO 8601."""

    @property
    def blobs(self) -> Mapping[str, str]:
        """Manifest paths at this commit and their blob ids."""

    def blob(self, path: str) -> str | None: ...

    def read_blob(self, blob: str) -> bytes: ...

    def read(self, path: str) -> bytes | None: ...

    def manifest_paths(self) -> list[str]: ...

    def first_parent_changes(self) -> list[Commit]:
        """Commits of the first-parent chain up to this one, oldest first, with the manifest files each changed."""

    def signatures(self, allowed_signers: str) -> dict[str, Signature]:
        """Each first-parent commit's signature, checked against ``allowed_signers`` (git's format)."""


class Source(Protocol):
    """A partner repository."""

    def revision(self, ref: str) -> Revision:
        """The repository at ``ref``; :class:`~reconciler.errors.NotFound` for an unknown ref."""
