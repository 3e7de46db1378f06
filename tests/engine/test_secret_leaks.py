"""No issued secret is ever readable in --home, plan or status output, or the audit log (DESIGN §6)."""

from __future__ import annotations

import pytest

from tests.support.engine import Installation
from tests.support.leaks import assert_nowhere
from tests.support.repo import PARTNER, TENANT

ACME, BETA = f"{TENANT}/acme-bank", f"{TENANT}/beta-ngo"


def test_issued_secrets_are_nowhere_but_in_the_one_delivery(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.repo.write_partner()
    installation.repo.write_partner(PARTNER.replace("acme-bank", "beta-ngo"), name="beta-ngo")
    installation.repo.commit()
    outputs = [installation.run("plan").stdout, installation.run("--output", "json", "plan").stdout]
    outputs.append(installation.run("apply").stdout)
    secrets: list[str] = []
    for partner in (ACME, BETA):
        delivered = installation.deliver(partner)
        secrets += [delivered["client_secret"], *delivered["webhook_secrets"].values()]
    installation.run("credentials", "rotate", ACME)
    secrets.append(installation.deliver(ACME)["client_secret"])
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-03-01T00:00:00Z")  # rotation due for BETA, overlap over for ACME
    outputs.append(installation.run("--output", "json", "apply").stdout)
    secrets.append(installation.deliver(BETA)["client_secret"])
    for command in (("status",), ("--output", "json", "status"), ("status", ACME), ("audit", "log"),
                    ("--output", "json", "audit", "log"), ("plan",), ("audit", "verify")):  # fmt: skip
        result = installation.run(*command)
        outputs += [result.stdout, result.stderr]

    assert len(set(secrets)) == 6  # 2 partners x (client + webhook), a forced and a due rotation
    haystacks = {f"output {index}": text.encode() for index, text in enumerate(outputs)}
    files = [path for path in installation.home.rglob("*") if path.is_file()]
    assert any(path.name == "audit.jsonl" for path in files)
    haystacks.update({str(path): path.read_bytes() for path in files})
    haystacks.update({str(path): path.read_bytes() for path in installation.repo.root.rglob("*") if path.is_file()})
    assert_nowhere(secrets, haystacks)


def test_secret_store_files_are_private(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.commit()
    installation.apply()
    key = installation.home / "secrets" / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (installation.home / "secrets" / "secrets.db").stat().st_mode & 0o077 == 0
    assert (installation.home / "secrets").stat().st_mode & 0o077 == 0
