"""A plan with nothing to do over 10,000 partners, against a cold ``validate`` of the same files
(target: at most 1/20), and a full first ``apply`` of 10,000 partners (time per partner, peak memory).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.generate import commit_all, generate_repository
from benchmarks.validate_bench import validate_all
from reconciler.cli import wiring
from reconciler.cli.options import Settings

PARTNERS = 10_000
ROUNDS = 3
NOW = "2026-11-28T12:00:00Z"


def first_apply(root: Path, home: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of a real ``partnerctl apply`` process onboarding every partner."""
    script = Path(sys.executable).parent / "partnerctl"
    start = time.perf_counter()
    completed = subprocess.run(
        [str(script), "--repo", str(root), "--home", str(home), "--approval", "none", "--dev-allow-loopback-webhooks",
         "-o", "json", "apply"],
        capture_output=True, text=True, check=False, env={**os.environ, "PARTNERCTL_NOW": NOW},
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    results = json.loads(completed.stdout)["results"]
    assert all(r["ok"] for r in results if r["action"] != "check-connectivity"), completed.stderr
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def applied(folder: Path, partners: int) -> tuple[Path, Path, float, float]:
    """``partners`` generated partners committed in ``folder``/repo and applied once into ``folder``/home: the
    repository, the home, and the first apply's seconds and peak memory (MB)."""
    root, home = folder / "repo", folder / "home"
    generate_repository(root, partners)
    commit_all(root)
    return root, home, *first_apply(root, home)


def main() -> dict[str, float]:
    os.environ["PARTNERCTL_NOW"] = NOW
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root, home, elapsed, peak = applied(Path(folder), PARTNERS)

        settings = Settings(repo=str(root), home=home, approval="none", dev_allow_loopback_webhooks=True)
        engine = wiring.reconciler(settings, reads_repository=True)
        baseline, measured, compared = [], [], []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            validate_all(root)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            outcome = engine.plan()
            measured.append(time.perf_counter() - start)
            assert not outcome.plan.actions, outcome.plan.actions[:3]
            start = time.perf_counter()
            engine.plan(use_memo=False)
            compared.append(time.perf_counter() - start)
        engine.close()
    ratio = min(measured) / min(baseline)
    full = min(compared) / min(baseline)
    print(f"no-op plan over {PARTNERS:,} partners: 1/{1 / ratio:.0f} of a cold validate of them "
          f"({ratio:.4f}x; target <= 1/20)")  # fmt: skip
    print(f"  the same plan comparing every partner (as after an unrelated commit): {full:.2f}x a cold validate")
    print(f"first apply of {PARTNERS:,} partners: {elapsed / PARTNERS * 1000:.2f} ms per partner, "
          f"peak memory {peak:.0f} MB")  # fmt: skip
    return {
        "noop_plan_ratio": ratio,
        "full_plan_ratio": full,
        "apply_ms_per_partner": elapsed / PARTNERS * 1000,
        "apply_peak_mb": peak,
    }


if __name__ == "__main__":
    main()
