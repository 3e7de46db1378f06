"""Driving plan/apply/status/credentials through the CLI against a git repository and a --home."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.backends.sqlite.secrets import LocalSecretStore
from tests.support.cli import Result, partnerctl
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import PARTNER, TENANT


@dataclass
class Installation:
    """A reconciler installation (``--home``) pointed at one partner repository."""

    repo: GitPartnerRepo
    home: Path
    trust_root: Path | None = None  # set: approvals are verified (--approval git)
    extra: tuple[str, ...] = ()  # more global options for every command

    def run(self, *args: str, approval: str | None = None) -> Result:
        mode = approval or ("git" if self.trust_root else "none")
        extra = ["--trust-root", str(self.trust_root)] if self.trust_root and mode != "none" else []
        return partnerctl(
            "--repo", str(self.repo.root), "--home", str(self.home), "--approval", mode, *extra, *self.extra, *args
        )  # fmt: skip

    def json(self, *args: str) -> Any:
        result = self.run("--output", "json", *args)
        assert result.exit_code in (0, 2), result
        return result.json()

    def plan(self) -> dict[str, Any]:
        result = self.run("--output", "json", "plan")
        assert result.exit_code == 0, result
        return dict(result.json())

    def apply(self) -> dict[str, Any]:
        result = self.run("--output", "json", "apply")
        assert result.exit_code == 0, result
        return dict(result.json())

    def onboard(self, *names: str, hooks: str | None = None, text: str | None = None) -> None:
        """Commit partners and apply: ``text`` as ACME, or copies of the example named ``names`` (ACME when
        none) with their webhooks at ``hooks``/NAME (a receiver on loopback)."""
        if text is not None:
            self.repo.write_partner(text)
        elif hooks is not None:
            self.repo.write_partners(hooks, *(names or ("acme-bank",)))
        else:
            self.repo.write_partner(PARTNER)
        self.repo.commit("Onboard partners")
        self.apply()

    def limit(self, *, per_minute: int, burst: int, tenant: str = TENANT) -> None:
        """Give the tenant's partners this gateway rate limit: its policy's ``gateway`` section, committed
        and applied (the engine records it with each partner)."""
        path = self.repo.root / f"policies/{tenant}.yaml"
        path.write_text(path.read_text() + f"  gateway: {{requestsPerMinute: {per_minute}, burst: {burst}}}\n")
        self.repo.commit(f"Gateway limits for {tenant}")
        self.apply()

    def blocked(self) -> dict[str, tuple[str, str]]:
        """The plan's blocked changes: partner -> (reason, message)."""
        return {item["partner"]: (item["reason"], item["message"]) for item in self.plan()["blocked"]}

    def pick_up_wrapped(self, partner: str) -> dict[str, str]:
        """A Vault-mode delivery, unwrapped as the Tech Lead would."""
        wrapped = self.deliver(partner)
        assert set(wrapped) == {"partner", "wrap_token", "wrap_ttl"} and wrapped["wrap_ttl"] == 86400
        result = self.unwrap(wrapped["wrap_token"])
        assert result.exit_code == 0, result
        return dict(result.json())

    def actions(self) -> list[tuple[str, str, str]]:
        return [(a["partner"], a["action"], a["reason"]) for a in self.plan()["actions"]]

    def status(self, partner: str | None = None) -> dict[str, Any]:
        result = self.run("--output", "json", "status", *([partner] if partner else []))
        assert result.exit_code == 0, result
        entries = result.json()["partners"]
        return {entry["partner"]: entry for entry in entries}

    def deliver(self, partner: str) -> dict[str, Any]:
        result = self.run("--output", "json", "credentials", "deliver", partner)
        assert result.exit_code == 0, result
        return dict(result.json())

    def unwrap(self, token: str) -> Result:
        """The Tech Lead's side of a Vault-mode delivery: ``partnerctl credentials unwrap``."""
        return partnerctl(*self.extra, "--output", "json", "credentials", "unwrap", token)

    def audit(self) -> list[dict[str, Any]]:
        result = self.run("--output", "json", "audit", "log")
        return list(result.json()["entries"])

    def events(self, partner: str | None = None) -> list[str]:
        return [entry["event"] for entry in self.audit() if partner is None or entry["partner"] == partner]

    def secrets(self) -> LocalSecretStore:
        return LocalSecretStore(self.home / "secrets")

    def sql(self, database: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Change a store behind the reconciler's back, as an operator or attacker would."""
        with sqlite3.connect(self.home / database) as db:
            return db.execute(statement, params).fetchall()
