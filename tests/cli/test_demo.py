"""``make demo``: the narrated tour runs end to end on the embedded defaults and cleans up after itself."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_the_demo_onboards_a_partner_end_to_end() -> None:
    before = set(Path(tempfile.gettempdir()).glob("partnerctl-demo-*"))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PARTNERCTL_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(PROJECT_ROOT), "demo"],
        capture_output=True, text=True, check=False, timeout=120, env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1 ping(s) with a valid Standard Webhooks signature" in out
    assert "a second pickup is refused (exit 1)" in out
    assert "ACTIVE/HEALTHY" in out
    assert "-> 403" in out and 'error="insufficient_scope"' in out
    [got] = [line for line in out.splitlines() if "partner receiver verified and got" in line]
    assert "'paymentReference': 'pay-2026-0042'" in got and "beneficiary" not in got and "Ana Banda" not in got
    assert "ACTIVE/DEGRADED" in out and "deactivated (5 failures)" in out
    assert "verified 4 signed request(s)" in out
    assert "awaiting-approval" in out
    assert "audit log intact" in out
    # Not a terminal: the console is started over the tour's installation, answers, and stops with it.
    assert "The console answered at http://127.0.0.1:" in out and "(not a terminal)" in out
    assert "scp_cs_" not in out.replace("scp_cs_…", "")  # the secret itself is never printed
    assert set(Path(tempfile.gettempdir()).glob("partnerctl-demo-*")) == before
