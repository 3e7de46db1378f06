"""The pull-request workflows parse and do what the repository relies on."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(document: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for job in document["jobs"].values() for step in job["steps"]]


def test_every_workflow_parses_with_jobs_and_least_privilege() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {path.name for path in files} >= {"validate.yml", "ci.yml", "plan.yml"}
    for path in files:
        document = workflow(path.name)
        assert document["jobs"], path
        expected = {"contents": "read", "pull-requests": "write"} if path.name == "plan.yml" else {"contents": "read"}
        assert document["permissions"] == expected, path


def test_plan_workflow_posts_one_updated_comment_with_plan_and_approvers() -> None:
    document = workflow("plan.yml")
    assert set(document["on"]["pull_request"]["paths"]) == {"partners/**", "policies/**"}
    script = "\n".join(steps(document))
    assert '--ref "$BASE" apply' in script and "--ref HEAD plan" in script
    assert "partnerctl approvers" in script
    poster = next(
        step for job in document["jobs"].values() for step in job["steps"] if "github-script" in step.get("uses", "")
    )
    assert "updateComment" in poster["with"]["script"] and "<!-- partnerctl-plan -->" in poster["with"]["script"]


def test_validate_runs_on_manifest_pull_requests_with_annotations() -> None:
    document = workflow("validate.yml")
    assert set(document["on"]["pull_request"]["paths"]) == {"partners/**", "policies/**", "schemas/**"}
    assert any("partnerctl --output github validate" in run for run in steps(document))


def test_ci_runs_lint_and_tests() -> None:
    runs = steps(workflow("ci.yml"))
    assert any("make lint" in run for run in runs)
    assert any("make test" in run for run in runs)


def test_ci_runs_the_vault_tests_against_hashicorp_vault() -> None:
    job = workflow("ci.yml")["jobs"]["vault"]
    assert job["services"]["vault"]["image"].startswith("hashicorp/vault:")
    assert job["env"]["VAULT_ADDR"].startswith("http://127.0.0.1:")
    run = " ".join(steps({"jobs": {"vault": job}}))
    for suite in ("tests/backends", "tests/engine/test_vault.py", "tests/engine/test_vault_faults.py"):
        assert suite in run and (PROJECT_ROOT / suite).exists()


def test_ci_runs_the_postgresql_tests_against_the_official_image() -> None:
    job = workflow("ci.yml")["jobs"]["postgresql"]
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert job["env"]["PARTNERCTL_TEST_POSTGRES_URL"].startswith("postgresql://")
    assert any("pytest" in run and "-k postgres" in run for run in steps({"jobs": {"postgresql": job}}))
    for suite in ("tests/backends/test_postgresql.py", "tests/backends/test_postgresql_concurrency.py"):
        assert (PROJECT_ROOT / suite).exists()


def test_ci_runs_the_end_to_end_onboarding_on_kind() -> None:
    job = workflow("ci.yml")["jobs"]["kind"]
    assert any(step.get("uses", "").startswith("helm/kind-action@") for step in job["steps"])
    assert any("deploy/kind/e2e.sh" in step.get("run", "") for step in job["steps"])
    assert (PROJECT_ROOT / "deploy" / "kind" / "e2e.sh").stat().st_mode & 0o111


def test_codeowners_gives_each_tenant_folder_to_its_admins() -> None:
    owners = {}
    for line in (PROJECT_ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *people = line.split()
            owners[pattern] = people
    for policy in (PROJECT_ROOT / "policies").glob("*.yaml"):
        if policy.name == "scopes.yaml":
            continue
        tenant = policy.stem
        logins = {f"@{approver['github']}" for approver in yaml.safe_load(policy.read_text())["spec"]["approvers"]}
        assert set(owners[f"/partners/{tenant}/"]) == logins
    assert owners["/policies/"] and owners["/schemas/"]
