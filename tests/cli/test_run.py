"""``partnerctl run``: the reconcile loop, once or until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.engine import Installation
from tests.support.repo import TENANT
from tests.support.servers import free_port


def test_run_once_reconciles_and_exits(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.commit()
    result = installation.run("run", "--once")
    assert result.exit_code == 0, result
    assert "3 action(s) done, 0 failed" in result.stderr
    assert installation.status()[f"{TENANT}/acme-bank"]["phase"] == "AWAITING_HANDSHAKE"


def test_sigterm_stops_the_loop_cleanly(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.commit()
    command = [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(installation.repo.root),
               "--home", str(installation.home), "--approval", "none", "run", "--interval", "1"]  # fmt: skip
    process = subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (installation.home / "state.db").exists():
        time.sleep(0.1)
    while time.monotonic() < deadline and installation.run("--output", "json", "status").json()["partners"] == []:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "received SIGTERM" in stderr


def test_metrics_health_and_readiness(installation: Installation) -> None:
    installation.repo.write_partner()
    installation.repo.commit()
    port = free_port()
    command = [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(installation.repo.root),
               "--home", str(installation.home), "--approval", "none", "run", "--interval", "1",
               "--metrics-port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"{base}/healthz").status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        assert 'partnerctl_partners{health="UNKNOWN",phase="AWAITING_HANDSHAKE"} 1.0' in metrics
        assert 'partnerctl_actions_total{action="register-partner",result="ok"} 1.0' in metrics
        assert f'partnerctl_credential_age_seconds{{partner="{TENANT}/acme-bank"}}' in metrics
        assert "partnerctl_reconcile_duration_seconds_count" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_json_logs_carry_partner_and_revision(installation: Installation) -> None:
    installation.repo.write_partner()
    revision = installation.repo.commit()
    result = installation.run("run", "--once", "--log-format", "json")
    assert result.exit_code == 0, result
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "msg", "revision", "partner"} <= set(line) for line in lines)
    per_partner = [line for line in lines if line["partner"] == f"{TENANT}/acme-bank"]
    assert {line["msg"] for line in per_partner} >= {"register-partner ok", "issue-credential ok"}
    assert all(line["revision"] == revision for line in per_partner)
