"""``partnerctl report`` (DESIGN §11, §12): the evidence per partner in four formats, checked against the
published JSON Schema, reproducible, and honest about an audit chain that does not verify."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Onboarded
from tests.support.engine import Installation
from tests.support.html import References
from tests.support.leaks import assert_nowhere
from tests.support.repo import PARTNER, TENANT, edit, policy_text
from tests.webhooks.test_dispatcher import dispatch, publish

ACME = f"{TENANT}/acme-bank"
SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "report.schema.json").read_text())
HOSTILE = "<img src=x onerror=alert(1)> & Co"


def report(installation: Installation, *args: str) -> tuple[int, str]:
    result = installation.run("report", *args)
    return result.exit_code, result.stdout


def document(installation: Installation, *args: str) -> dict[str, Any]:
    code, text = report(installation, "--format", "json", *args)
    assert code == 0, text
    answer: dict[str, Any] = json.loads(text)
    return answer


def test_the_json_report_follows_its_schema_and_holds_the_evidence(onboarded: Onboarded) -> None:
    publish(onboarded)
    dispatch(onboarded)
    onboarded.receiver.status = 503
    publish(onboarded)
    dispatch(onboarded)
    answer = document(onboarded.installation)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        answer
    )
    head = answer["auditHead"]
    assert head["verified"] is True and head["seq"] == len(onboarded.installation.audit())
    assert answer["revision"] == onboarded.installation.repo.git.head.commit.hexsha
    [partner] = answer["partners"]
    assert partner["partner"] == ACME and partner["organization"] == {"displayName": "ACME Bank", "type": "bank"}
    assert [approval["commit"] for approval in partner["approvals"]] == [answer["revision"]]
    assert {scope["name"]: scope["classification"] for scope in partner["scopes"]} == {
        "beneficiary:read:anonymous": "anonymous", "payment:status:read": "pseudonymous",
        "payment:status:update": "pseudonymous"}  # fmt: skip
    assert partner["credential"]["method"] == "client_secret" and partner["credential"]["rotations"] == 0
    assert partner["credential"]["clientId"] == onboarded.credentials["client_id"]
    assert partner["accessReview"]["overdue"] is False and partner["accessReview"]["dueAt"]
    assert partner["webhooks"] == [{"name": "payment-events", "state": "failing", "delivered30d": 1, "failed30d": 1}]


def test_the_same_revision_audit_head_and_clock_give_the_same_report(onboarded: Onboarded) -> None:
    for form in ("json", "markdown", "csv", "html"):
        first = report(onboarded.installation, "--format", form)
        assert first == report(onboarded.installation, "--format", form) and first[0] == 0, form


def test_the_csv_opens_as_a_table_one_row_per_partner(onboarded: Onboarded) -> None:
    code, text = report(onboarded.installation, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["partner"] for row in rows] == [ACME]
    assert rows[0]["phase"] in ("ACTIVE", "AWAITING_HANDSHAKE") and rows[0]["auditVerified"] == "true"
    assert rows[0]["scopes"].split() == ["beneficiary:read:anonymous", "payment:status:read", "payment:status:update"]
    assert all(len(line) == len(rows[0]) for line in csv.reader(io.StringIO(text)))


def test_the_html_is_self_contained_and_escapes_manifest_text(installation: Installation) -> None:
    installation.repo.write_partner(edit(PARTNER, "displayName: ACME Bank", f'displayName: "{HOSTILE}"'))
    installation.repo.commit("ACME with a hostile name")
    installation.apply()
    code, page = report(installation, "--format", "html")
    assert code == 0
    parsed = References()
    parsed.feed(page)
    assert parsed.loading == [] and not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    assert "url(" not in page and "@import" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; Co" in page
    code, text = report(installation, "--format", "markdown")
    assert "<img" not in text and "&lt;img" in text


def test_a_tenant_report_holds_only_that_tenant(installation: Installation) -> None:
    installation.repo.write("policies/other.yaml", policy_text("other"))
    installation.repo.write_partner()
    installation.repo.write_partner(PARTNER.replace(TENANT, "other"), tenant="other")
    installation.repo.commit("Two tenants")
    installation.apply()
    assert [p["partner"] for p in document(installation)["partners"]] == [ACME, "other/acme-bank"]
    only = document(installation, "--tenant", "other")
    assert only["tenant"] == "other" and [p["partner"] for p in only["partners"]] == ["other/acme-bank"]


def test_a_broken_audit_chain_still_reports_says_so_at_the_top_and_exits_1(onboarded: Onboarded) -> None:
    log = onboarded.installation.home / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["actor"] = "someone-else"
    lines[1] = json.dumps(entry) + "\n"
    log.write_text("".join(lines))
    code, text = report(onboarded.installation)
    assert code == 1
    assert text.startswith("> **WARNING: the audit chain does not verify**")
    assert ACME in text, "the evidence is still printed"
    result = onboarded.installation.run("report", "--format", "json")
    assert result.exit_code == 1 and json.loads(result.stdout)["auditHead"]["verified"] is False
    code, page = report(onboarded.installation, "--format", "html")
    assert code == 1 and page.index("audit chain does not verify") < page.index("<h1>")


def test_out_writes_the_file_and_nothing_on_stdout(onboarded: Onboarded, tmp_path: Path) -> None:
    target = tmp_path / "evidence.html"
    result = onboarded.installation.run("report", "--format", "html", "--out", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert target.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("form", ["json", "markdown", "csv", "html"])
def test_no_report_holds_a_secret(onboarded: Onboarded, form: str) -> None:
    _, text = report(onboarded.installation, "--format", form)
    secrets = [onboarded.credentials["client_secret"], *onboarded.credentials["webhook_secrets"].values()]
    assert_nowhere(secrets, {f"report ({form})": text.encode()})
