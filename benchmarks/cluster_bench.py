"""One reconcile pass with nothing to do over 1,000 partners with the Kubernetes state store, as a ratio
of the same pass with SQLite.

The Kubernetes API is the test suite's local server (tests/support/kube.py) in a process of its
own, reached through the real kubernetes client; both installations are applied first, then passes
are timed in interleaved rounds. Two passes are measured: the plan the loop runs every interval
(answered from the memo when nothing changed: one LIST of the objects against a SQLite counter
read) and a full plan comparing every partner (what a pass costs after an unrelated commit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git

from benchmarks.gateway_bench import free_port
from benchmarks.generate import generate_repository
from reconciler.cli import wiring
from reconciler.cli.options import Settings
from reconciler.engine.reconciler import Reconciler
from tests.support.kube import write_kubeconfig

PARTNERS = max(20, int(1000 * float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1"))))
ROUNDS = 5
NOW = "2026-11-28T12:00:00Z"


def best(engine: Reconciler, *, memo: bool) -> float:
    start = time.perf_counter()
    outcome = engine.plan(use_memo=memo)
    elapsed = time.perf_counter() - start
    assert not outcome.plan.actions, outcome.plan.actions[:3]
    return elapsed


def main() -> dict[str, float]:
    os.environ["PARTNERCTL_NOW"] = NOW
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "tests.support.kube", str(port)])
        try:
            write_kubeconfig(Path(folder) / "kubeconfig", f"http://127.0.0.1:{port}")
            os.environ["KUBECONFIG"] = str(Path(folder) / "kubeconfig")
            root = Path(folder) / "repo"
            generate_repository(root, PARTNERS)
            repo = git.Repo.init(root)
            repo.git.add("-A")
            repo.git.execute(["git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "partners"])
            time.sleep(0.5)  # the API server's socket
            engines = {}
            for name, state in (("sqlite", None), ("kubernetes", "kubernetes://scp")):
                settings = Settings(repo=str(root), home=Path(folder) / name, approval="none", state=state,
                                    dev_allow_loopback_webhooks=True)  # fmt: skip
                engine = wiring.reconciler(settings, reads_repository=True)
                applied = engine.apply()
                assert all(result.ok for result in applied.results), [r for r in applied.results if not r.ok][:3]
                engines[name] = engine
            timings: dict[tuple[str, bool], list[float]] = {}
            for _ in range(ROUNDS):
                for memo in (True, False):
                    for name, engine in engines.items():
                        timings.setdefault((name, memo), []).append(best(engine, memo=memo))
            for engine in engines.values():
                engine.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    loop_ratio = min(timings["kubernetes", True]) / min(timings["sqlite", True])
    full_ratio = min(timings["kubernetes", False]) / min(timings["sqlite", False])
    kubernetes_ms, sqlite_ms = min(timings["kubernetes", False]) * 1000, min(timings["sqlite", False]) * 1000
    print(f"reconcile pass with nothing to do, {PARTNERS} partners, Kubernetes state vs SQLite: "
          f"{loop_ratio:.1f}x as the loop runs it (memo: one LIST), {full_ratio:.2f}x a full comparison "
          f"({kubernetes_ms:.0f} ms vs {sqlite_ms:.0f} ms)")  # fmt: skip
    return {"cluster_loop_ratio": loop_ratio, "cluster_full_ratio": full_ratio}


if __name__ == "__main__":
    main()
