"""Plan and apply on real git repositories and the embedded stores (DESIGN §5, §6, §9)."""

from __future__ import annotations

import shutil

import pytest

from tests.support.engine import Installation
from tests.support.repo import PARTNER, POLICY, TENANT, edit

ACME = f"{TENANT}/acme-bank"
ACME_FILE = f"partners/{TENANT}/acme-bank.yaml"
BETA = f"{TENANT}/beta-ngo"


def test_first_onboarding_registers_issues_and_registers_webhooks(installation: Installation) -> None:
    installation.repo.write_partner()
    revision = installation.repo.commit("Onboard ACME Bank")
    plan = installation.plan()
    assert plan["revision"] == revision
    assert [(a["partner"], a["action"]) for a in plan["actions"]] == [
        (ACME, "register-partner"),
        (ACME, "issue-credential"),
        (ACME, "register-webhook"),
    ]
    assert plan["checks"] == [{"partner": ACME, "action": "check-connectivity"}]
    assert plan["blocked"] == []

    applied = installation.apply()
    assert applied["revision"] == revision
    assert [(r["action"], r["ok"]) for r in applied["results"]] == [
        ("register-partner", True),
        ("issue-credential", True),
        ("register-webhook", True),
        ("check-connectivity", False),  # no handshake yet: health, not the exit code
    ]
    assert installation.actions() == []

    status = installation.status()[ACME]
    assert (status["phase"], status["health"]) == ("AWAITING_HANDSHAKE", "UNKNOWN")
    assert status["appliedRevision"] == revision
    assert status["credential"]["clientId"] == f"{TENANT}.acme-bank"
    assert status["credential"]["rotatesAt"].startswith("2027-02-26")  # 90 days after PARTNERCTL_NOW
    # The connectivity check pinged the webhook; .example names never resolve (RFC 2606).
    assert status["webhooks"] == [
        {"name": "payment-events", "url": "https://hooks.acme-bank.example/scp", "state": "failing",
         "consecutiveFailures": 1}
    ]  # fmt: skip
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Approved": "True", "CredentialsIssued": "True", "WebhooksRegistered": "True",
        "HandshakeVerified": "False", "WebhooksReachable": "False", "AccessReviewed": "True", "Ready": "False",
    }  # fmt: skip
    assert installation.events(ACME) == [
        "credential.issued", "partner.registered", "approval.recorded", "review.recorded", "webhook.registered",
        "webhook.failing",
    ]  # fmt: skip


def test_plan_is_deterministic_and_detailed_exitcode_counts_actions(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.write_partner(PARTNER.replace("acme-bank", "beta-ngo"), name="beta-ngo")
    installation.repo.commit()
    first = installation.run("--output", "json", "plan", "--detailed-exitcode")
    second = installation.run("--output", "json", "plan", "--detailed-exitcode")
    assert first.exit_code == second.exit_code == 2
    assert first.stdout == second.stdout
    installation.apply()
    assert installation.run("plan", "--detailed-exitcode").exit_code == 0


def test_scope_change_updates_the_partner(installation: Installation) -> None:
    installation.onboard()
    installation.repo.write_partner(edit(PARTNER, "    - payment:status:update\n", ""))
    installation.repo.commit("Drop payment:status:update")
    assert installation.actions() == [(ACME, "update-partner", "spec-changed")]
    installation.apply()
    assert installation.status()[ACME]["scopes"] == ["beneficiary:read:anonymous", "payment:status:read"]
    assert installation.events(ACME)[-2:] == ["partner.updated", "approval.recorded"]
    assert installation.actions() == []


def test_webhook_added_changed_and_removed(installation: Installation) -> None:
    installation.onboard()
    moved = edit(PARTNER, "https://hooks.acme-bank.example/scp", "https://hooks.acme-bank.example/v2")
    installation.repo.write_partner(moved)
    installation.repo.commit("Move webhook")
    assert installation.actions() == [(ACME, "update-webhook", "webhook-changed")]
    installation.apply()
    assert installation.status()[ACME]["webhooks"][0]["url"] == "https://hooks.acme-bank.example/v2"

    second = edit(
        moved, "  mappings:\n",
        '    - name: audit-feed\n      url: "https://audit.acme-bank.example/in"\n'
        "      events: [payment.status.changed]\n  mappings:\n",
    )  # fmt: skip
    installation.repo.write_partner(second)
    installation.repo.commit("Second webhook")
    assert installation.actions() == [(ACME, "register-webhook", "webhook-added")]
    installation.apply()
    assert installation.deliver(ACME)["webhook_secrets"].keys() >= {"audit-feed"}

    installation.repo.write_partner(moved)
    installation.repo.commit("Remove it again")
    assert installation.actions() == [(ACME, "remove-webhook", "webhook-removed")]
    installation.apply()
    assert [hook["name"] for hook in installation.status()[ACME]["webhooks"]] == ["payment-events"]


def test_suspension_revokes_at_once_and_resuming_issues_anew(installation: Installation) -> None:
    installation.onboard()
    secret = installation.deliver(ACME)["client_secret"]
    installation.repo.write_partner(edit(PARTNER, "suspended: false", "suspended: true"))
    installation.repo.commit("Suspend ACME")
    assert installation.actions() == [(ACME, "suspend-partner", "suspended"), (ACME, "revoke-credential", "suspended")]
    installation.apply()
    assert installation.secrets().verify(f"{TENANT}.acme-bank", secret) is None
    status = installation.status()[ACME]
    assert status["phase"] == "SUSPENDED" and status["credential"] is None
    assert "partner.suspended" in installation.events(ACME)
    assert installation.actions() == []

    installation.repo.write_partner(PARTNER)
    installation.repo.commit("Resume ACME")
    assert installation.actions() == [(ACME, "update-partner", "resumed"), (ACME, "issue-credential", "resumed")]
    installation.apply()
    fresh = installation.deliver(ACME)["client_secret"]
    assert fresh != secret
    assert installation.secrets().verify(f"{TENANT}.acme-bank", fresh) is not None


def test_approved_deletion_decommissions_and_revokes(installation: Installation) -> None:
    installation.onboard()
    secret = installation.deliver(ACME)["client_secret"]
    installation.repo.delete(ACME_FILE)
    installation.repo.commit("Offboard ACME")
    assert installation.actions() == [
        (ACME, "revoke-credential", "decommissioned"),
        (ACME, "remove-webhook", "decommissioned"),
        (ACME, "decommission-partner", "file-deleted"),
    ]
    installation.apply()
    assert installation.secrets().verify(f"{TENANT}.acme-bank", secret) is None
    assert installation.status()[ACME]["phase"] == "DECOMMISSIONED"
    assert installation.events(ACME)[-3:] == ["credential.revoked", "partner.decommissioned", "approval.recorded"]
    assert installation.actions() == []


def test_rotation_when_due_then_overlap_then_revocation(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.onboard()
    old = installation.deliver(ACME)["client_secret"]
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-02-25T12:00:00Z")  # 89 days later
    assert installation.actions() == []
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-02-26T12:00:00Z")  # 90 days
    assert installation.actions() == [(ACME, "rotate-credential", "rotation-due")]
    installation.apply()
    new = installation.deliver(ACME)["client_secret"]
    store = installation.secrets()
    assert store.verify(f"{TENANT}.acme-bank", old) is not None  # overlap
    assert store.verify(f"{TENANT}.acme-bank", new) is not None
    assert "credential.rotated" in installation.events(ACME)

    monkeypatch.setenv("PARTNERCTL_NOW", "2027-03-05T12:00:00Z")  # overlapDays: 7
    assert installation.actions() == [(ACME, "revoke-credential", "overlap-ended")]
    installation.apply()
    assert store.verify(f"{TENANT}.acme-bank", old) is None
    assert store.verify(f"{TENANT}.acme-bank", new) is not None


def test_forced_rotation(installation: Installation) -> None:
    installation.onboard()
    old = installation.deliver(ACME)["client_secret"]
    result = installation.run("credentials", "rotate", ACME)
    assert result.exit_code == 0, result
    new = installation.deliver(ACME)["client_secret"]
    assert new != old
    assert installation.secrets().verify(f"{TENANT}.acme-bank", old) is not None  # overlap
    assert installation.status()[ACME]["credential"]["issuedAt"].startswith("2026-11-28")
    assert "credential.rotated" in installation.events(ACME)
    assert installation.run("credentials", "rotate", f"{TENANT}/ghost").exit_code == 1


def test_drift_is_detected_and_repaired(installation: Installation) -> None:
    installation.onboard()
    installation.sql("secrets/secrets.db", "DELETE FROM credentials")
    assert installation.actions() == [(ACME, "issue-credential", "drift")]
    installation.sql("secrets/secrets.db", "DELETE FROM webhook_secrets")
    assert installation.actions() == [(ACME, "issue-credential", "drift"), (ACME, "register-webhook", "drift")]
    installation.apply()
    assert installation.actions() == []
    delivered = installation.deliver(ACME)
    assert installation.secrets().verify(delivered["client_id"], delivered["client_secret"]) is not None
    assert "payment-events" in delivered["webhook_secrets"]


def test_a_lost_local_secret_store_is_drift_and_everything_is_reissued(installation: Installation) -> None:
    installation.onboard()
    shutil.rmtree(installation.home / "secrets")  # key and database gone, e.g. a disk restored without them
    assert installation.actions() == [(ACME, "issue-credential", "drift"), (ACME, "register-webhook", "drift")]
    installation.apply()
    assert installation.actions() == []


def test_webhook_record_removed_from_state_is_registered_again(installation: Installation) -> None:
    installation.onboard()
    installation.sql("state.db", "UPDATE partners SET data = json_set(data, '$.webhooks', json('{}'))")
    assert installation.actions() == [(ACME, "register-webhook", "webhook-added")]
    installation.apply()
    assert installation.actions() == []


def test_broken_manifest_beside_good_ones_blocks_only_itself(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.write_partner(edit(PARTNER.replace("acme-bank", "beta-ngo"), "region: eu-west", "region: mars"),
                                    name="beta-ngo")  # fmt: skip
    installation.repo.write_partner(b"\xff not yaml", name="garbled")
    installation.repo.commit()
    plan = installation.plan()
    assert {a["partner"] for a in plan["actions"]} == {ACME}
    blocked = {b["partner"]: b for b in plan["blocked"]}
    assert set(blocked) == {BETA, f"{TENANT}/garbled"}
    assert blocked[BETA]["reason"] == "invalid-manifest"
    assert "RES-01" in blocked[BETA]["message"]
    installation.apply()
    status = installation.status()
    assert status[ACME]["phase"] == "AWAITING_HANDSHAKE"
    assert status[BETA]["phase"] == "PENDING_APPROVAL"


def test_invalid_edit_keeps_the_applied_version_live(installation: Installation) -> None:
    installation.onboard()
    installation.repo.write_partner(edit(PARTNER, "method: oauth2-client-credentials", "method: api-key"))
    installation.repo.commit("Switch to API keys")
    plan = installation.plan()
    assert plan["actions"] == []
    assert [(b["partner"], b["reason"]) for b in plan["blocked"]] == [(ACME, "invalid-manifest")]
    installation.apply()
    assert installation.status()[ACME]["credential"] is not None


def test_broken_tenant_policy_blocks_only_that_tenant(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.write("policies/other.yaml", POLICY.replace(TENANT, "other"))
    installation.repo.write_partner(PARTNER.replace(TENANT, "other"), tenant="other")
    installation.repo.write(f"policies/{TENANT}.yaml", edit(POLICY, "onFailure: deactivate", "onFailure: panic"))
    installation.repo.commit()
    plan = installation.plan()
    assert {a["partner"] for a in plan["actions"]} == {"other/acme-bank"}
    assert [(b["partner"], b["reason"]) for b in plan["blocked"]] == [(ACME, "invalid-tenant-policy")]


def test_only_committed_files_count_and_ref_selects_the_revision(installation: Installation) -> None:
    installation.repo.write_partner()
    first = installation.repo.commit()
    installation.repo.write_partner(PARTNER.replace("acme-bank", "beta-ngo"), name="beta-ngo")  # not committed
    assert {a["partner"] for a in installation.plan()["actions"]} == {ACME}
    installation.repo.commit()
    result = installation.run("--ref", first, "--output", "json", "plan")
    assert {a["partner"] for a in result.json()["actions"]} == {ACME}


def test_delivery_is_once_and_a_second_pickup_is_refused_and_audited(installation: Installation) -> None:
    installation.onboard()
    delivered = installation.deliver(ACME)
    assert delivered["client_secret"].startswith("scp_cs_")
    assert delivered["token_endpoint"].endswith("/oauth2/token")
    assert delivered["webhook_secrets"]["payment-events"].startswith("whsec_")
    again = installation.run("credentials", "deliver", ACME)
    assert again.exit_code == 1
    assert "already delivered" in again.stderr
    assert installation.events(ACME)[-2:] == ["credential.delivered", "credential.delivery_refused"]


def test_not_a_git_repository_is_a_clear_error(installation: Installation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.cli import partnerctl

    result = partnerctl("--repo", str(tmp_path), "--home", str(tmp_path / "h"), "--approval", "none", "plan")
    assert result.exit_code == 1
    assert "not a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plan_with_nothing_to_do_still_sees_hand_edits_and_due_rotations(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.onboard()
    assert installation.actions() == []
    assert installation.actions() == []  # answered from the memo of the plan before
    installation.sql("secrets/secrets.db", "UPDATE credentials SET state = 'revoked'")
    assert installation.actions() == [(ACME, "issue-credential", "drift")]
    installation.apply()
    assert installation.actions() == []
    installation.sql("state.db", "DELETE FROM partners")
    assert (ACME, "register-partner", "new-partner") in installation.actions()
    installation.apply()
    assert installation.actions() == []
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-02-26T12:00:00Z")
    assert installation.actions() == [(ACME, "rotate-credential", "rotation-due")]
