"""--approval git: only SSH-signed approval commits by the right approvers change live state (DESIGN §4)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import People
from tests.support.engine import Installation
from tests.support.repo import PARTNER, TENANT, edit, policy_text
from tests.support.signing import trailers

ACME = f"{TENANT}/acme-bank"
ACME_FILE = f"partners/{TENANT}/acme-bank.yaml"


def propose(installation: Installation, text: str = PARTNER, branch: str = "onboard-acme") -> None:
    """An Integration Manager's pull request: a branch with the partner file."""
    installation.repo.branch(branch)
    installation.repo.write_partner(text)
    installation.repo.commit("Onboard ACME Bank")
    installation.repo.checkout("main")


def test_approved_merge_applies_and_records_the_approval(approved: Installation, people: People) -> None:
    propose(approved)
    commit = approved.repo.merge("onboard-acme", "Merge onboard-acme" + trailers(people.alice.email, "DPA-2026-031"),
                                 signer=people.alice)  # fmt: skip
    assert [a["action"] for a in approved.plan()["actions"]] == [
        "register-partner", "issue-credential", "register-webhook",
    ]  # fmt: skip
    approved.apply()
    record = approved.status()[ACME]["approval"]
    assert record["commit"] == commit
    assert record["approver"] == people.alice.email
    assert record["policyDocument"] == "DPA-2026-031"
    assert record["approvedAt"]
    recorded = [e for e in approved.audit() if e["event"] == "approval.recorded" and e["partner"] == ACME]
    assert recorded[0]["details"]["policyDocument"] == "DPA-2026-031"


@pytest.mark.parametrize(
    ("signer", "approver", "document", "reason"),
    [
        (None, None, None, "awaiting-approval"),
        (None, "alice@msa.example", "DPA-1", "invalid-signature"),
        ("mallory", "alice@msa.example", "DPA-1", "approver-not-authorised"),
        ("bob", "bob@other.example", "DPA-1", "approver-not-authorised"),
        ("alice", "alice@msa.example", None, "missing-policy-document"),
        ("alice", "bob@other.example", "DPA-1", "approver-not-authorised"),
    ],
    ids=["unsigned", "unsigned-claiming", "non-approver", "foreign-tenant", "no-policy-document", "wrong-trailer"],
)
def test_wrong_approvals_block_and_say_who_may_approve(
    approved: Installation, people: People, signer: str | None, approver: str | None, document: str | None,
    reason: str,
) -> None:  # fmt: skip
    propose(approved)
    key = getattr(people, signer) if signer else None
    approved.repo.merge("onboard-acme", "Merge onboard-acme" + trailers(approver, document), signer=key)
    plan = approved.plan()
    assert plan["actions"] == []
    found = approved.blocked()[ACME]
    assert found[0] == reason
    if reason != "missing-policy-document":
        assert people.alice.email in found[1]  # names who may approve
    approved.apply()
    assert approved.status()[ACME]["phase"] == "PENDING_APPROVAL"
    assert approved.status()[ACME]["approval"] is None


def test_a_tampered_signature_is_invalid(approved: Installation, people: People) -> None:
    propose(approved)
    commit = approved.repo.merge("onboard-acme", "Merge" + trailers(people.alice.email, "DPA-1"), signer=people.alice)
    repo = approved.repo.git
    body = repo.git.cat_file("commit", commit).replace("Merge", "Merged", 1)
    forged = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"], input=body + "\n", text=True, check=True,
        capture_output=True, cwd=approved.repo.root,
    ).stdout.strip()  # fmt: skip
    repo.git.update_ref("refs/heads/main", forged)
    assert approved.blocked()[ACME][0] == "invalid-signature"


def test_a_pull_request_cannot_approve_itself_by_adding_its_author(approved: Installation, people: People) -> None:
    approved.repo.branch("takeover")
    approved.repo.write(f"policies/{TENANT}.yaml", policy_text(TENANT, people.mallory.approver_yaml()))
    approved.repo.write_partner()
    approved.repo.commit("Add me and my partner")
    approved.repo.checkout("main")
    approved.repo.merge("takeover", "Merge" + trailers(people.mallory.email, "DPA-666"), signer=people.mallory)
    found = approved.blocked()
    assert found[ACME][0] == "approver-not-authorised"
    assert approved.plan()["actions"] == []
    # The policy edit itself is not approved either: Alice stays the only approver.
    approved.apply()
    approved.repo.write_partner(edit(PARTNER, "region: eu-west", "region: eu-central"))
    approved.repo.commit("Mallory again" + trailers(people.mallory.email, "DPA-667"), signer=people.mallory)
    assert approved.blocked()[ACME][0] == "approver-not-authorised"


def test_a_later_unapproved_edit_keeps_the_approved_version_live(approved: Installation, people: People) -> None:
    propose(approved)
    first = approved.repo.merge("onboard-acme", "Merge" + trailers(people.alice.email, "DPA-1"), signer=people.alice)
    approved.apply()
    approved.repo.write_partner(edit(PARTNER, "    - payment:status:update\n", ""))
    approved.repo.commit("Quick fix straight on main")
    plan = approved.plan()
    assert plan["actions"] == []
    assert approved.blocked()[ACME][0] == "awaiting-approval"
    approved.apply()
    status = approved.status()[ACME]
    assert status["approval"]["commit"] == first
    assert "payment:status:update" in status["scopes"]
    assert status["credential"] is not None


def test_approved_deletion_decommissions(approved: Installation, people: People) -> None:
    propose(approved)
    approved.repo.merge("onboard-acme", "Merge" + trailers(people.alice.email, "DPA-1"), signer=people.alice)
    approved.apply()
    approved.repo.delete(ACME_FILE)
    approved.repo.commit("Offboard ACME" + trailers(people.alice.email, "DPA-1-TERM"), signer=people.alice)
    assert [a["action"] for a in approved.plan()["actions"]][-1] == "decommission-partner"
    approved.apply()
    status = approved.status()[ACME]
    assert status["phase"] == "DECOMMISSIONED"
    assert status["approval"]["policyDocument"] == "DPA-1-TERM"


def test_an_unapproved_deletion_keeps_the_partner(approved: Installation, people: People) -> None:
    propose(approved)
    approved.repo.merge("onboard-acme", "Merge" + trailers(people.alice.email, "DPA-1"), signer=people.alice)
    approved.apply()
    approved.repo.delete(ACME_FILE)
    approved.repo.commit("Oops")
    assert approved.plan()["actions"] == []
    assert approved.blocked()[ACME][0] == "awaiting-approval"


def test_tenant_policy_changes_need_the_trust_root(approved: Installation, people: People) -> None:
    widened = edit(policy_text(TENANT, people.alice.approver_yaml("alice-msa")), "eu-central]", "eu-central, us-east]")
    approved.repo.write(f"policies/{TENANT}.yaml", widened)
    approved.repo.commit("Allow us-east" + trailers(people.alice.email, "DPA-9"), signer=people.alice)
    approved.repo.write_partner(edit(PARTNER, "region: eu-west", "region: us-east"))
    approved.repo.commit("ACME in us-east" + trailers(people.alice.email, "DPA-9"), signer=people.alice)
    found = approved.blocked()
    assert found[ACME][0] == "invalid-manifest"  # RES-01 against the approved policy
    assert "RES-01" in found[ACME][1]

    approved.repo.write(f"policies/{TENANT}.yaml", widened + "# approved by the platform\n")
    approved.repo.commit("Platform approves us-east" + trailers(people.owner.email, "PLAT-7"), signer=people.owner)
    approved.repo.write_partner(edit(PARTNER, "region: eu-west", "region: us-east") + "# re-approved\n")
    approved.repo.commit("ACME in us-east" + trailers(people.alice.email, "DPA-9"), signer=people.alice)
    assert approved.blocked() == {}
    assert approved.plan()["actions"][0]["action"] == "register-partner"


def test_git_mode_needs_a_trust_root(approved: Installation) -> None:
    installation = Installation(approved.repo, approved.home)
    result = installation.run("plan", approval="git")
    assert result.exit_code == 2
    assert "--trust-root" in result.stderr


def test_git_is_the_default_mode(approved: Installation) -> None:
    from tests.support.cli import partnerctl

    result = partnerctl("--repo", str(approved.repo.root), "--home", str(approved.home), "plan")
    assert result.exit_code == 2 and "--trust-root" in result.stderr
    result = partnerctl("--repo", str(approved.repo.root), "--home", str(approved.home),
                        "--trust-root", str(approved.trust_root), "-o", "json", "plan")  # fmt: skip
    assert result.exit_code == 0, result


def test_partnerctl_approve_signs_a_merge_with_the_trailers(approved: Installation, people: People) -> None:
    propose(approved)
    result = approved.run("approve", "onboard-acme", "--policy-document", "DPA-2026-031", "--yes",
                          "--signing-key", str(people.alice.private_key), "--approver", people.alice.email)  # fmt: skip
    assert result.exit_code == 0, result
    assert f"A {ACME_FILE}" in result.stdout
    head = approved.repo.git.head.commit
    assert len(head.parents) == 2
    assert "Approved-by: alice@msa.example" in head.message and "Policy-Document: DPA-2026-031" in head.message
    assert next(a["action"] for a in approved.plan()["actions"]) == "register-partner"


def test_partnerctl_approve_refuses_a_branch_with_violations(approved: Installation, people: People) -> None:
    propose(approved, edit(PARTNER, "method: oauth2-client-credentials", "method: api-key"))
    before = approved.repo.git.head.commit.hexsha
    result = approved.run("approve", "onboard-acme", "--policy-document", "DPA-1", "--yes",
                          "--signing-key", str(people.alice.private_key), "--approver", people.alice.email)  # fmt: skip
    assert result.exit_code == 2
    assert "SEC-01" in result.stdout
    assert approved.repo.git.head.commit.hexsha == before


def test_partnerctl_approve_requires_a_policy_document(approved: Installation) -> None:
    propose(approved)
    assert approved.run("approve", "onboard-acme", "--yes").exit_code == 2


def test_a_pull_request_plan_shows_only_its_changes_and_who_must_approve(
    approved: Installation, people: People, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """What .github/workflows/plan.yml does: apply the base into a throwaway home, plan the branch."""
    approved.repo.write_partner(PARTNER.replace("acme-bank", "beta-ngo"), name="beta-ngo")
    approved.repo.commit("Beta" + trailers(people.alice.email, "DPA-0"), signer=people.alice)
    propose(approved)
    approved.repo.checkout("onboard-acme")
    base_home = Installation(approved.repo, tmp_path / "base-home")
    assert base_home.run("--ref", "main", "--output", "json", "apply").exit_code == 0
    plan = base_home.run("--output", "json", "plan").json()
    assert {a["partner"] for a in plan["actions"]} == {ACME}
    who = approved.run("approvers", "--base", "main")
    assert who.exit_code == 0
    assert f"A {ACME_FILE}: a Tenant Admin of {TENANT}: Alice Admin <alice@msa.example> @alice-msa" in who.stdout
