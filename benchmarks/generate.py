"""Generates a partner repository of N partners from the examples, varied so no two files are equal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import git

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TENANTS = ("ministry-social-affairs", "country-office-malawi")


LOCAL_WEBHOOKS = "http://127.0.0.1:9"  # the discard port: nothing listens, pings fail at once, no DNS
# The tenant policies' gateway limits (requests per minute, burst): the highest the schema allows, so the
# benchmarks measure what rate limiting costs, never its refusals.
BENCH_LIMITS = (100_000, 10_000)


def generate_repository(
    root: Path,
    count: int,
    *,
    webhook_base: str | None = LOCAL_WEBHOOKS,
    webhook_bases: list[str] | None = None,
    template: str | None = None,
    gateway: tuple[int, int] | None = BENCH_LIMITS,
) -> list[Path]:
    """Write policies/ and ``count`` partner files under ``root``; return the partner files.

    Webhook URLs are moved to ``webhook_base`` (loopback: run with --dev-allow-loopback-webhooks) so
    that connectivity checks never wait on DNS; None keeps the examples' public host names.
    ``webhook_bases`` spreads partners over several receivers; ``template`` uses one example partner
    (by file stem) for every partner. ``gateway``: the tenant policies' rate limit (None: the defaults).
    """
    shutil.copytree(PROJECT_ROOT / "policies", root / "policies", dirs_exist_ok=True)
    if gateway is not None:
        for tenant in TENANTS:
            policy = root / "policies" / f"{tenant}.yaml"
            policy.write_text(policy.read_text().rstrip("\n") +
                              f"\n  gateway: {{requestsPerMinute: {gateway[0]}, burst: {gateway[1]}}}\n")  # fmt: skip
    templates = {
        tenant: [path.read_text() for path in sorted((PROJECT_ROOT / "partners" / tenant).glob("*.yaml"))]
        for tenant in TENANTS
    }
    stems = {
        tenant: [path.stem for path in sorted((PROJECT_ROOT / "partners" / tenant).glob("*.yaml"))]
        for tenant in TENANTS
    }
    written = []
    for index in range(count):
        tenant = TENANTS[index % len(TENANTS)]
        choice = (index // len(TENANTS)) % len(templates[tenant])
        if template is not None:
            tenant = next(t for t in TENANTS if template in stems[t])
            choice = stems[tenant].index(template)
        name = f"partner-{index:05d}"
        text = templates[tenant][choice].replace(f"name: {stems[tenant][choice]}", f"name: {name}", 1)
        text = text.replace("DSA-20", f"DSA-{index:05d}-20")
        base = webhook_bases[index % len(webhook_bases)] if webhook_bases else webhook_base
        if base is not None:
            text = re.sub(r"url: https://[^/\s]+", f"url: {base}", text)
        folder = root / "partners" / tenant
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(text)
        written.append(path)
    return written


def commit_all(root: Path) -> git.Repo:
    """``root`` as a git repository with everything in it committed once (the benchmarks' partner repository)."""
    repo = git.Repo.init(root)
    repo.git.add("-A")
    repo.git.execute(["git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "partners"])
    return repo
