"""Assertions on ``partnerctl validate --output json`` results."""

from __future__ import annotations

from typing import Any

from tests.support.cli import partnerctl
from tests.support.repo import PartnerRepo


def validate(repo: PartnerRepo, *paths: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate (the whole repository by default) and return the JSON report; checks the exit code."""
    result = partnerctl("--repo", str(repo.root), "--output", "json", *extra, "validate", *paths)
    report: dict[str, Any] = result.json()
    assert result.exit_code == (0 if report["valid"] else 1), result
    return report


def codes_at(report: dict[str, Any], file: str) -> list[tuple[str, int]]:
    """(code, line) of every violation in ``file``, in report order."""
    return [(v["code"], v["line"]) for v in report["violations"] if v["file"] == file]


def assert_violation(report: dict[str, Any], *, file: str, code: str, line: int, path: str | None = None) -> None:
    matches = [v for v in report["violations"] if v["file"] == file and v["code"] == code and v["line"] == line]
    assert matches, f"no {code} at {file}:{line}; got {codes_at(report, file)}: {report['violations']}"
    if path is not None:
        assert any(v["path"] == path for v in matches), matches


def assert_only(report: dict[str, Any], *, file: str, code: str, line: int, path: str | None = None) -> None:
    """Exactly one violation in the report, the one described."""
    assert len(report["violations"]) == 1, report["violations"]
    assert_violation(report, file=file, code=code, line=line, path=path)
