"""Real git repositories of partner manifests, committed with GitPython."""

from __future__ import annotations

from dataclasses import dataclass, field

import git

from tests.support.repo import PartnerRepo


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

    def commit(self, message: str = "Update partners") -> str:
        self.git.git.add("-A")
        self.git.index.commit(message)
        return self.git.head.commit.hexsha
