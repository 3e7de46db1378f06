"""Reads partner repositories from git: files at a revision, straight from blobs, never a checkout.

This is the one module that talks to git (through GitPython). A remote ``--repo`` URL is mirrored
into ``<home>/repos/`` and fetched on each run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import RepositoryError
from reconciler.manifests.validation import PARTNERS_DIR, POLICIES_DIR, is_manifest_path


def open_repository(location: str, *, home: Path) -> git.Repo:
    """A local repository by path, or a mirror of a remote one (cloned or fetched now)."""
    if "://" in location or location.startswith("git@"):
        mirror = home / "repos" / hashlib.sha256(location.encode()).hexdigest()[:16]
        try:
            if mirror.exists():
                repo = git.Repo(mirror)
                repo.git.fetch("--prune", "origin", "+refs/heads/*:refs/heads/*")
            else:
                repo = git.Repo.clone_from(location, mirror, mirror=True)
        except git.GitCommandError as error:
            raise RepositoryError(f"cannot fetch {location}: {error.stderr.strip() or error}") from None
        return repo
    try:
        return git.Repo(location, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise RepositoryError(f"{location} is not a git repository (plan and apply read committed files)") from None


@dataclass(frozen=True)
class Entry:
    path: str
    blob: str


class Revision:
    """The manifest files of one commit. Implements ``validation.Tree``."""

    def __init__(self, repo: git.Repo, ref: str) -> None:
        self.repo = repo
        try:
            self.commit = repo.commit(ref)
        except (git.BadName, git.BadObject, ValueError, git.GitCommandError):
            raise RepositoryError(f"unknown git ref {ref!r} in {repo.working_dir or repo.git_dir}") from None
        self.sha = self.commit.hexsha
        self._entries: dict[str, Entry] | None = None

    @property
    def entries(self) -> dict[str, Entry]:
        """Manifest files at this commit (listed on first use: a memoised plan never needs them)."""
        if self._entries is None:
            self._entries = self._list()
        return self._entries

    def _list(self) -> dict[str, Entry]:
        output = self.repo.git.ls_tree("-r", "-z", "--full-tree", self.sha, "--", PARTNERS_DIR, POLICIES_DIR)
        entries: dict[str, Entry] = {}
        for record in output.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            _mode, kind, blob = meta.split(" ")
            if kind == "blob" and is_manifest_path(path):
                entries[path] = Entry(path, blob)
        return entries

    def blob(self, path: str) -> str | None:
        entry = self.entries.get(path)
        return entry.blob if entry else None

    def read_blob(self, blob: str) -> bytes:
        data: bytes = self.repo.odb.stream(bytes.fromhex(blob)).read()
        return data

    # validation.Tree
    def read(self, path: str) -> bytes | None:
        blob = self.blob(path)
        return None if blob is None else self.read_blob(blob)

    def manifest_paths(self) -> list[str]:
        return sorted(self.entries)
