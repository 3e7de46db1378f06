"""Runs ``partnerctl`` in-process, as a user would from a shell, and captures what it prints."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import Any

from reconciler.cli.main import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def partnerctl(*args: str) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    exit_code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        import sys

        saved = sys.argv
        sys.argv = ["partnerctl", *args]
        try:
            main()
        except SystemExit as stop:
            exit_code = stop.code if isinstance(stop.code, int) else 1
        finally:
            sys.argv = saved
    return Result(exit_code, stdout.getvalue(), stderr.getvalue())
