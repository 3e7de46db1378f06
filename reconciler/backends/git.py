"""The partner repository in git: files at a revision read straight from blobs, the first-parent history,
signatures, and the signed merge of ``partnerctl approve``. The only module that runs git.

A remote ``--repo`` URL is mirrored into ``<home>/repos/`` and fetched on each run.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import git

from reconciler.errors import NotFound, ReconcilerError, Stalled, StoreUnavailable, UsageError
from reconciler.manifests.validation import PARTNERS_DIR, POLICIES_DIR, is_manifest_path
from reconciler.stores.source import Commit, Signature

__all__ = ["GitRevision", "GitSource", "open_repository", "run_git"]


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
            raise StoreUnavailable(f"cannot fetch {location}: {error.stderr.strip() or error}") from error
        return repo
    try:
        return git.Repo(location, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise NotFound(f"{location} is not a git repository (plan and apply read committed files)") from error


class GitSource:
    """A partner repository at a path or URL (:class:`~reconciler.stores.source.Source`)."""

    def __init__(self, location: str, *, home: Path) -> None:
        self.location, self.home = location, home
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:  # opened (and fetched) on first use: a command may never need it
            self._repo = open_repository(self.location, home=self.home)
        return self._repo

    def revision(self, ref: str) -> GitRevision:
        return GitRevision(self.repo, ref)

    # --- what partnerctl approve does in a checkout ---------------------------------------------------

    def changed_manifests(self, base: str, tip: str) -> list[tuple[str, str]]:
        """(status letter, path) of each manifest file ``tip`` changes against its merge base with ``base``."""
        output = self._git("diff", "--name-status", "--no-renames", f"{base}...{tip}", "--", PARTNERS_DIR, POLICIES_DIR)
        changes = []
        for line in output.splitlines():
            status, path = line.split("\t", 1)
            if is_manifest_path(path):
                changes.append((status[0], path))
        return changes

    def signed_merge(self, target: str, branch: str, *, key: str, message: str) -> str:
        """Merge ``branch`` into ``target`` as an SSH-signed merge commit; the new commit's sha."""
        repo = self.repo
        if repo.bare:
            raise UsageError("approve works in a checkout of the partner repository")
        try:
            tree = repo.git.merge_tree("--write-tree", target, branch).splitlines()[0]
        except git.GitCommandError as error:
            raise Stalled(f"{branch} does not merge cleanly into {target}; rebase it first") from error
        old = repo.commit(target).hexsha
        command = ["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit-tree", tree,
                   "-p", old, "-p", repo.commit(branch).hexsha, "-S", "-m", message]  # fmt: skip
        try:
            merged = str(repo.git.execute(command)).strip()
        except git.GitCommandError as error:
            raise Stalled(f"signing failed: {error.stderr.strip()}") from error
        if not repo.head.is_detached and repo.active_branch.name == target:
            repo.git.merge("--ff-only", merged)
        else:
            repo.git.update_ref(f"refs/heads/{target}", merged, old)
        return merged

    def current_branch(self) -> str:
        if self.repo.head.is_detached:
            raise UsageError("HEAD is detached: name the target branch with --into")
        return self.repo.active_branch.name

    def config(self, name: str) -> str | None:
        try:
            return str(self.repo.git.config("--get", name)).strip() or None
        except git.GitCommandError:
            return None

    def _git(self, *args: str) -> str:
        try:
            return str(self.repo.git.execute(["git", *args]))
        except git.GitCommandError as error:
            raise NotFound(f"git {args[0]} failed: {error.stderr.strip() or error}") from error


class GitRevision:
    """The manifest files of one commit, and the history behind it (:class:`~reconciler.stores.source.Revision`)."""

    def __init__(self, repo: git.Repo, ref: str) -> None:
        self.repo = repo
        try:
            self.commit = repo.commit(ref)
        except (git.BadName, git.BadObject, ValueError, git.GitCommandError) as error:
            raise NotFound(f"unknown git ref {ref!r} in {repo.working_dir or repo.git_dir}") from error
        self._sha = self.commit.hexsha
        self._blobs: dict[str, str] | None = None

    @property
    def sha(self) -> str:
        return self._sha

    @property
    def committed_at(self) -> str:
        return self.commit.committed_datetime.isoformat()

    @property
    def blobs(self) -> Mapping[str, str]:
        """Manifest files at this commit (listed on first use: a memoised plan never needs them)."""
        if self._blobs is None:
            self._blobs = self._list()
        return self._blobs

    def _list(self) -> dict[str, str]:
        output = self.repo.git.ls_tree("-r", "-z", "--full-tree", self.sha, "--", PARTNERS_DIR, POLICIES_DIR)
        blobs: dict[str, str] = {}
        for record in output.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            _mode, kind, blob = meta.split(" ")
            if kind == "blob" and is_manifest_path(path):
                blobs[path] = blob
        return blobs

    def blob(self, path: str) -> str | None:
        return self.blobs.get(path)

    def read_blob(self, blob: str) -> bytes:
        data: bytes = self.repo.odb.stream(bytes.fromhex(blob)).read()
        return data

    def read(self, path: str) -> bytes | None:
        blob = self.blob(path)
        return None if blob is None else self.read_blob(blob)

    def manifest_paths(self) -> list[str]:
        return sorted(self.blobs)

    def first_parent_changes(self) -> list[Commit]:
        output = self.repo.git.log(
            "--first-parent", "--diff-merges=first-parent", "--reverse", "--raw", "--no-abbrev", "--no-renames",
            "--format=%x1e%H %P%x1f%cI%x1f%B%x1d", self.sha,
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
                    if is_manifest_path(path):
                        changes[path] = meta.split()[3]
            commits.append(Commit(sha, tuple(parents), date, message, changes))
        return commits

    def signatures(self, allowed_signers: str) -> dict[str, Signature]:
        with tempfile.NamedTemporaryFile("w", prefix="partnerctl-signers-", suffix=".txt") as handle:
            handle.write(allowed_signers)
            handle.flush()
            output = self.repo.git.execute(
                ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={Path(handle.name)}",
                 "log", "--first-parent", "--format=%H%x1f%G?%x1f%GF", self.sha],
            )  # fmt: skip
        signatures = {}
        for line in str(output).splitlines():
            sha, status, fingerprint = [*line.split("\x1f"), "", ""][:3]
            signatures[sha] = Signature(status, fingerprint)
        return signatures


def run_git(folder: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``git args`` in ``folder`` as a person at a terminal would (the demo's Integration Manager)."""
    done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True, check=False)  # noqa: S603, S607
    if done.returncode != 0:
        raise ReconcilerError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout
