"""``partnerctl apply`` killed with SIGKILL at many points converges on the next run (DESIGN §5)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import git

from benchmarks.generate import generate_repository
from reconciler.backends.sqlite.secrets import LocalSecretStore
from reconciler.clock import now

PARTNERS = 200


def count(database: Path, query: str) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as db:
        try:
            return int(db.execute(query).fetchone()[0])
        except sqlite3.OperationalError:  # table not created yet
            return 0


def test_sigkill_at_many_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    root, home = tmp_path / "repo", tmp_path / "home"
    generate_repository(root, PARTNERS)
    repo = git.Repo.init(root)
    repo.git.add("-A")
    repo.git.execute(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "partners"])
    command = [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(root), "--home", str(home),
               "--approval", "none", "--dev-allow-loopback-webhooks", "--output", "json", "apply"]  # fmt: skip
    environment = {**os.environ, "PARTNERCTL_NOW": "2026-11-28T12:00:00Z"}

    audit_log = home / "audit.jsonl"
    kills_mid_apply = 0
    # Kill once the audit log has grown by a different amount each time: inside credential issuance,
    # between the two stores, mid-partner, at the very first write.
    for growth in (1, 3_000, 700, 12_000, 1, 25_000, 5_000, 40_000, 9_000, 1, 60_000, 2_000):
        start = audit_log.stat().st_size if audit_log.exists() else 0
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None:
            if audit_log.exists() and audit_log.stat().st_size >= start + growth:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        if process.wait() != -signal.SIGKILL:
            break  # it finished before the log grew that much
        registered = count(home / "state.db", "SELECT COUNT(*) FROM partners")
        if 0 < registered < PARTNERS:
            kills_mid_apply += 1
    print(f"{kills_mid_apply} kills landed mid-apply")
    assert kills_mid_apply >= 3, "the kills never landed in the middle of an apply"

    final = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=300)
    assert final.returncode == 0, final.stderr
    assert all(
        result["ok"] for result in json.loads(final.stdout)["results"] if result["action"] != "check-connectivity"
    )

    plan = subprocess.run([*command[:-1], "plan"], env=environment, capture_output=True, text=True, check=True)
    assert json.loads(plan.stdout)["actions"] == []

    secrets_db = home / "secrets" / "secrets.db"
    with sqlite3.connect(secrets_db) as db:
        live = Counter(partner for (partner,) in db.execute("SELECT partner FROM credentials WHERE state != 'revoked'"))
        issued = Counter(partner for (partner,) in db.execute("SELECT partner FROM credentials"))
    assert len(live) == PARTNERS
    assert set(live.values()) == {1}, "a partner has more than one live credential"
    assert set(issued.values()) == {1}, "a credential was issued twice"

    audit = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    events = Counter((entry["event"], entry["partner"]) for entry in audit)
    assert all(events[("credential.issued", partner)] == 1 for partner in live)
    assert all(events[("partner.registered", partner)] == 1 for partner in live)
    verify = subprocess.run([*command[:-1], "audit", "verify"], env=environment, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout

    store = LocalSecretStore(home / "secrets")
    for partner in live:  # every issued secret is still deliverable, and works
        pickup = store.take_pickup(partner, now=now())
        assert pickup is not None and pickup.client_secret is not None
        assert store.verify(pickup.client_id, pickup.client_secret) is not None
