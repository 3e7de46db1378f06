"""Real git repositories of partner manifests, committed with GitPython."""

from __future__ import annotations

from dataclasses import dataclass, field

import git

from tests.support.repo import PartnerRepo
from tests.support.signing import Signer, signed_commit


@dataclass
class GitPartnerRepo(PartnerRepo):
    """A :class:`PartnerRepo` that is also a git repository; :meth:`commit` records the working tree."""

    git: git.Repo = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.git = git.Repo.init(self.root, initial_branch="main")
        with self.git.config_writer() as config:
            config.set_value("user", "name", "Ivy Integration")
            config.set_value("user", "email", "ivy@platform.example")
            config.set_value("commit", "gpgsign", "false")

    def delete(self, path: str) -> None:
        (self.root / path).unlink()

    def commit(self, message: str = "Update partners", *, signer: Signer | None = None) -> str:
        """Commit the working tree; SSH-signed when ``signer`` is given."""
        self.git.git.add("-A")
        if signer is not None:
            return signed_commit(self.git, message, signer)
        self.git.index.commit(message)
        return self.git.head.commit.hexsha

    def branch(self, name: str) -> None:
        self.git.git.checkout("-q", "-b", name)

    def checkout(self, name: str) -> None:
        self.git.git.checkout("-q", name)

    def merge(self, branch: str, message: str, *, signer: Signer | None = None) -> str:
        """A --no-ff merge of ``branch`` into the checked-out branch, signed when ``signer`` is given."""
        options = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signer.private_key}"] if signer else []
        sign = ["-S"] if signer else ["--no-gpg-sign"]
        self.git.git.execute(["git", *options, "merge", "-q", "--no-ff", *sign, "-m", message, branch])
        return self.git.head.commit.hexsha
