"""Real SSH keys (ssh-keygen) and SSH-signed git commits, for approvals in git mode."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import git


@dataclass(frozen=True)
class Signer:
    """A person with an ed25519 key pair."""

    name: str
    email: str
    private_key: Path

    @property
    def public_key(self) -> str:
        return self.private_key.with_suffix(".pub").read_text().strip()

    def approver_yaml(self, github: str | None = None) -> str:
        extra = f", github: {github}" if github else ""
        return f'{{name: {self.name}, email: {self.email}{extra}, sshKey: "{self.public_key}"}}'


def make_signer(folder: Path, name: str, email: str) -> Signer:
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / email.split("@")[0]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)], check=True)
    return Signer(name, email, key)


def signed_commit(repo: git.Repo, message: str, signer: Signer) -> str:
    """Commit the staged changes, SSH-signed by ``signer``."""
    repo.git.execute(
        ["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={signer.private_key}", "commit", "-q", "-S",
         "--allow-empty", "-m", message]
    )  # fmt: skip
    return repo.head.commit.hexsha


def trailers(approver: str | None, policy_document: str | None) -> str:
    lines = []
    if approver:
        lines.append(f"Approved-by: {approver}")
    if policy_document:
        lines.append(f"Policy-Document: {policy_document}")
    return ("\n\n" + "\n".join(lines)) if lines else ""


def trust_root_yaml(*owners: Signer) -> str:
    approvers = "\n".join(f"    - {owner.approver_yaml(owner.email.split('@')[0] + '-gh')}" for owner in owners)
    return (
        "apiVersion: partners.scp.dev/v1\nkind: TrustRoot\nmetadata: {name: platform-owners}\n"
        f"spec:\n  approvers:\n{approvers}\n"
    )
