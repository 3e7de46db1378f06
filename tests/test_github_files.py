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
    assert {path.name for path in files} >= {"validate.yml", "ci.yml"}
    for path in files:
        document = workflow(path.name)
        assert document["jobs"], path
        assert document["permissions"] == {"contents": "read"}, path


def test_validate_runs_on_manifest_pull_requests_with_annotations() -> None:
    document = workflow("validate.yml")
    assert set(document["on"]["pull_request"]["paths"]) == {"partners/**", "policies/**", "schemas/**"}
    assert any("partnerctl --output github validate" in run for run in steps(document))


def test_ci_runs_lint_and_tests() -> None:
    runs = steps(workflow("ci.yml"))
    assert any("make lint" in run for run in runs)
    assert any("make test" in run for run in runs)


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
