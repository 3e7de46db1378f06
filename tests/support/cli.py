"""Runs ``partnerctl`` in-process, as a user would from a shell, and captures what it prints."""

from __future__ import annotations

import contextlib
import io
import json
import sys
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


def partnerctl(*args: str, stdin: str = "") -> Result:
    """Run ``partnerctl args`` with ``stdin`` as its standard input. An exception that escapes ``main`` is
    what a user would see as a traceback: it propagates to the test."""
    stdout, stderr = io.StringIO(), io.StringIO()
    exit_code = 0
    saved_argv, saved_stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["partnerctl", *args], io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv, sys.stdin = saved_argv, saved_stdin
    return Result(exit_code, stdout.getvalue(), stderr.getvalue())
