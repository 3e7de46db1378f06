"""``partnerctl validate``: output formats, exit codes and what it validates (DESIGN §11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.support.cli import partnerctl
from tests.support.repo import PARTNER, TENANT, PartnerRepo, edit, line_of

BAD = edit(PARTNER, "region: eu-west", "region: us-east")
BAD_FILE = f"partners/{TENANT}/acme-bank.yaml"


def test_text_output_lists_file_line_code_message_grouped_and_a_summary(repo: PartnerRepo) -> None:
    repo.write_partner(BAD)
    repo.write_partner(PARTNER.replace("acme-bank", "beta-bank"), name="beta-bank")
    result = partnerctl("--repo", str(repo.root), "validate")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == BAD_FILE
    assert lines[1].strip().startswith(f"{BAD_FILE}:{line_of(BAD, 'region:')}: RES-01 region 'us-east'")
    assert lines[-1] == "4 files checked: 1 violation in 1 file"


def test_json_output_has_the_design_shape_and_nothing_else_on_stdout(repo: PartnerRepo) -> None:
    repo.write_partner(BAD)
    result = partnerctl("--repo", str(repo.root), "validate", "--output", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"valid", "files", "violations"}
    assert report["valid"] is False and report["files"] == 3
    [violation] = report["violations"]
    assert violation == {
        "file": BAD_FILE,
        "line": line_of(BAD, "region:"),
        "path": "spec.residency.region",
        "code": "RES-01",
        "message": violation["message"],
    }
    assert "eu-west" in violation["message"]  # says what is allowed


def test_valid_repository_exits_zero(repo: PartnerRepo) -> None:
    repo.write_partner()
    result = partnerctl("--repo", str(repo.root), "validate")
    assert result.exit_code == 0
    assert result.stdout.strip() == "3 files checked: all valid"


def test_github_output_prints_workflow_annotations(repo: PartnerRepo) -> None:
    repo.write_partner(BAD)
    result = partnerctl("--repo", str(repo.root), "--output", "github", "validate")
    assert result.exit_code == 1
    annotation = result.stdout.splitlines()[0]
    assert annotation.startswith(f"::error file={BAD_FILE},line={line_of(BAD, 'region:')},title=RES-01::region")


def test_paths_select_files_and_folders(repo: PartnerRepo) -> None:
    repo.write_partner(BAD)
    repo.write_partner(PARTNER.replace("acme-bank", "beta-bank"), name="beta-bank")
    only_good = partnerctl("--repo", str(repo.root), "-o", "json", "validate", f"partners/{TENANT}/beta-bank.yaml")
    assert only_good.exit_code == 0 and only_good.json()["files"] == 1
    folder = partnerctl("--repo", str(repo.root), "-o", "json", "validate", f"partners/{TENANT}")
    assert folder.exit_code == 1 and folder.json()["files"] == 2


def test_a_file_outside_the_repository_is_checked_against_the_repositorys_policies(
    repo: PartnerRepo, tmp_path: Path
) -> None:
    outside = tmp_path / "draft.yaml"
    outside.write_text(BAD)
    result = partnerctl("--repo", str(repo.root), "-o", "json", "validate", str(outside))
    assert [(v["file"], v["code"]) for v in result.json()["violations"]] == [(str(outside), "RES-01")]


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "does/not/exist.yaml"),
        ("validate", "--output", "xml"),
        ("--repo", "/nonexistent/repo", "validate"),
        ("frobnicate",),
    ],
)
def test_usage_errors_exit_2_without_traceback(repo: PartnerRepo, args: tuple[str, ...]) -> None:
    full = args if args[0] == "--repo" else ("--repo", str(repo.root), *args)
    result = partnerctl(*full)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


def test_the_installed_console_script_runs(repo: PartnerRepo) -> None:
    repo.write_partner(BAD)
    script = Path(sys.executable).parent / "partnerctl"
    completed = subprocess.run(
        [str(script), "--repo", str(repo.root), "validate", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
        timeout=60,
    )
    assert completed.returncode == 1
    assert json.loads(completed.stdout)["violations"][0]["code"] == "RES-01"


def test_this_repository_is_a_valid_partner_repository() -> None:
    result = partnerctl("--repo", str(PROJECT_ROOT), "-o", "json", "validate")
    assert result.exit_code == 0, result.stdout
    assert result.json()["files"] >= 8


def test_help_shows_an_example() -> None:
    result = partnerctl("validate", "--help")
    assert result.exit_code == 0
    assert "partnerctl validate" in result.stdout
