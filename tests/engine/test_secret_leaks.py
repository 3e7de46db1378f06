"""No issued secret is ever readable in --home, plan or status output, or the audit log (DESIGN §6)."""

from __future__ import annotations

import base64

import pytest

from tests.support.engine import Installation
from tests.support.repo import PARTNER, TENANT

ACME, BETA = f"{TENANT}/acme-bank", f"{TENANT}/beta-ngo"


def forms(secret: str) -> list[bytes]:
    """The secret as text, base64 of it, and its random bytes (raw, base64, base64url, hex)."""
    body = secret.split("_", 2)[-1] if secret.startswith("scp_cs_") else secret.removeprefix("whsec_")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if secret.startswith("scp_cs_") else (
        base64.b64decode(body))  # fmt: skip
    return [
        secret.encode(),
        base64.b64encode(secret.encode()),
        body.encode(),
        raw,
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
    ]


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
    for secret in secrets:
        for form in forms(secret):
            for where, content in haystacks.items():
                assert form not in content, f"a form of an issued secret was found in {where}"


def test_secret_store_files_are_private(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.commit()
    installation.apply()
    key = installation.home / "secrets" / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (installation.home / "secrets" / "secrets.db").stat().st_mode & 0o077 == 0
    assert (installation.home / "secrets").stat().st_mode & 0o077 == 0
