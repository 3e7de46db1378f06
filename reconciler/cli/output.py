"""Rendering of command results as text, JSON or GitHub workflow annotations."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

import click

from reconciler.validation import Report


def emit_json(document: Any) -> None:
    """One JSON document on stdout and nothing else there (DESIGN §11)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False))


def validation_text(report: Report) -> str:
    lines: list[str] = []
    for file, violations in groupby(sorted(report.violations), key=lambda violation: violation.file):
        lines.append(file)
        lines.extend(f"  {v.file}:{v.line}: {v.code} {v.message}" for v in violations)
        lines.append("")
    lines.append(validation_summary(report))
    return "\n".join(lines)


def validation_summary(report: Report) -> str:
    noun = "file" if report.files == 1 else "files"
    if report.valid:
        return f"{report.files} {noun} checked: all valid"
    bad_files = len({violation.file for violation in report.violations})
    count = len(report.violations)
    return (
        f"{report.files} {noun} checked: {count} violation{'s' if count != 1 else ''} "
        f"in {bad_files} file{'s' if bad_files != 1 else ''}"
    )


def validation_github(report: Report) -> str:
    """``::error`` workflow commands, so violations show inline on the pull request."""
    lines = [
        f"::error file={_property(v.file)},line={v.line},title={_property(str(v.code))}::{_data(v.message)}"
        for v in sorted(report.violations)
    ]
    lines.append(validation_summary(report))
    return "\n".join(lines)


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
