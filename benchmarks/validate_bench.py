"""Validating 10,000 partner files against parsing them with PyYAML's C loader (target: at most 2x),
and the peak memory of ``partnerctl validate`` over them (target: under 300 MB).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from benchmarks.generate import generate_repository
from reconciler.manifests.validation import Validator
from reconciler.manifests.worktree import WorkingTree

PARTNERS = 10_000
ROUNDS = 3


def parse_with_libyaml(files: list[Path]) -> None:
    for path in files:
        with path.open("rb") as handle:
            yaml.load(handle.read(), Loader=yaml.CSafeLoader)


def validate_all(root: Path) -> None:
    tree = WorkingTree(root)
    report = Validator(tree, today=date(2026, 11, 28), allow_loopback_webhooks=True).validate(tree.manifest_paths())
    if not report.valid:
        raise SystemExit(f"benchmark repository is not valid: {report.violations[:3]}")


def peak_rss_of_cli(root: Path) -> float:
    """Peak resident memory (MB) of a real ``partnerctl validate`` process."""
    script = Path(sys.executable).parent / "partnerctl"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    completed = subprocess.run(
        [str(script), "--repo", str(root), "--dev-allow-loopback-webhooks", "-o", "json", "validate"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PARTNERCTL_NOW": "2026-11-28T00:00:00Z"},
    )
    report = json.loads(completed.stdout)
    assert report["valid"] and report["files"] >= PARTNERS, completed.stderr
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root = Path(folder)
        files = generate_repository(root, PARTNERS)
        baseline, measured = [], []
        for _ in range(ROUNDS):  # interleaved, best of each: the machine is noisy
            start = time.perf_counter()
            parse_with_libyaml(files)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            validate_all(root)
            measured.append(time.perf_counter() - start)
        ratio = min(measured) / min(baseline)
        peak = peak_rss_of_cli(root)
    print(f"validate {PARTNERS:,} partner files: {ratio:.2f}x a PyYAML C-loader parse of them (target <= 2x)")
    print(f"validate peak memory: {peak:.0f} MB (target < 300 MB)")
    return {"validate_ratio": ratio, "validate_peak_mb": peak}


if __name__ == "__main__":
    main()
