"""Vault failing in the middle of an apply (sealed, stopped, token revoked): a clear error, nothing
half-applied, and the next apply converges. Runs against real OpenBao processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac.exceptions
import pytest

from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder
from tests.support.vault import VaultSpace, start_durable_server

PARTNERS = [f"partner-{number:02d}" for number in range(40)]


@pytest.fixture
def durable_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultSpace]:
    """A Vault with file storage, so that it can be stopped and started again."""
    server = start_durable_server(tmp_path / "durable-bao")
    server.prepare()
    space = VaultSpace(server, "scp-partners/durable", server.token("partnerctl"))
    monkeypatch.setenv("VAULT_TOKEN", space.token)
    yield space
    server.stop()


def start_apply(installation: Installation) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(installation.repo.root),
               "--home", str(installation.home), "--approval", "none", *installation.extra, "apply"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_apply(installation: Installation, vault: VaultSpace, fault: Callable[[], None]) -> str:
    """Start an apply over many partners, cause ``fault`` once a few are done, and return its stderr."""
    apply = start_apply(installation)
    lister = vault.server.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            done = lister.secrets.kv.v2.list_secrets(f"{vault.prefix}/{TENANT}")["data"]["keys"]
        except hvac.exceptions.InvalidPath:
            done = []
        if len(done) >= 3:
            break
        time.sleep(0.01)
    fault()
    _, stderr = apply.communicate(timeout=120)
    assert apply.returncode == 1, stderr
    assert "Traceback" not in stderr
    return stderr


def assert_converged(installation: Installation) -> None:
    installation.apply()
    assert installation.plan()["actions"] == []
    status = installation.status()
    assert all(status[f"{TENANT}/{name}"]["credential"] for name in PARTNERS)
    issued = Counter(e["partner"] for e in installation.audit() if e["event"] == "credential.issued")
    assert issued == Counter({f"{TENANT}/{name}": 1 for name in PARTNERS}), "no credential issued twice or lost"
    assert installation.run("audit", "verify").exit_code == 0
    for name in (PARTNERS[0], PARTNERS[-1]):  # nothing issued was lost: the pickups are there
        assert installation.deliver(f"{TENANT}/{name}")["wrap_token"]


def many_partners(repo: GitPartnerRepo, receiver: tuple[HttpRecorder, str]) -> None:
    repo.write_partners(receiver[1], *PARTNERS)
    repo.commit("Onboard forty partners")


def test_vault_sealed_in_the_middle_of_an_apply(
    vault_installation: Installation, vault: VaultSpace, receiver: tuple[HttpRecorder, str]
) -> None:
    if not vault.server.ours:
        pytest.skip("sealing needs the unseal key of a server we started")
    many_partners(vault_installation.repo, receiver)
    try:
        stderr = interrupt_apply(vault_installation, vault, vault.server.seal)
    finally:
        vault.server.unseal()
    assert "is sealed" in stderr and "vault operator unseal" in stderr
    assert_converged(vault_installation)


def test_vault_stopped_in_the_middle_of_an_apply(
    durable_vault: VaultSpace, git_repo: GitPartnerRepo, tmp_path: Path, receiver: tuple[HttpRecorder, str]
) -> None:
    installation = Installation(git_repo, tmp_path / "home", extra=("--secrets", durable_vault.url,
                                                                    "--dev-allow-loopback-webhooks"))  # fmt: skip
    many_partners(git_repo, receiver)
    stderr = interrupt_apply(installation, durable_vault, durable_vault.server.stop)
    assert "cannot reach Vault" in stderr
    durable_vault.server.restart()
    assert_converged(installation)


def test_vault_token_revoked_in_the_middle_of_an_apply(
    vault_installation: Installation, vault: VaultSpace, receiver: tuple[HttpRecorder, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    many_partners(vault_installation.repo, receiver)
    stderr = interrupt_apply(vault_installation, vault, lambda: vault.server.client().auth.token.revoke(vault.token))
    assert "permission denied" in stderr and "revoked" in stderr
    monkeypatch.setenv("VAULT_TOKEN", vault.server.token("partnerctl"))
    assert_converged(vault_installation)
