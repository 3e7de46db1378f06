"""Shared fixtures: a clean environment for every test and a small partner repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import TODAY, PartnerRepo

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's partnerctl settings; the clock is fixed."""
    for name in ("PARTNERCTL_HOME", "PARTNERCTL_DEV_ALLOW_LOOPBACK", "GITHUB_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARTNERCTL_NOW", TODAY)
    monkeypatch.setenv("PARTNERCTL_HOME", str(tmp_path / "home"))


@pytest.fixture
def repo(tmp_path: Path) -> PartnerRepo:
    """A partner repository with the DESIGN catalog and one tenant, and no partners yet."""
    return PartnerRepo.create(tmp_path / "repo")


@pytest.fixture
def git_repo(tmp_path: Path) -> GitPartnerRepo:
    """A git partner repository with the catalog and one tenant committed, and no partners yet."""
    repo = GitPartnerRepo.create(tmp_path / "git-repo")
    repo.commit("Scope catalog and tenant policy")
    return repo


@pytest.fixture
def installation(git_repo: GitPartnerRepo, tmp_path: Path) -> Installation:
    """An empty reconciler installation (--home) reading ``git_repo``."""
    return Installation(git_repo, tmp_path / "home")
