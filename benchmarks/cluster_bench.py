"""One reconcile pass with nothing to do over 1,000 partners with the Kubernetes state store, as a ratio
of the same pass with SQLite (target, against the real API server: at most 1.5x as the loop runs it).

Two Kubernetes APIs: the real kube-apiserver and etcd that ``make kube`` builds (TLS, RBAC, partnerctl as
the least-privilege identity of deploy/base/rbac.yaml), and the test suite's local server
(tests/support/kube.py) in a process of its own; both reached through the real kubernetes client.
Every installation is applied first, then passes are timed in interleaved rounds. Two passes are
measured: the plan the loop runs every interval (answered from the memo when nothing changed: the
state store's version, kept by a WATCH in a long-running process, against a SQLite counter read) and
a full plan comparing every partner (what a pass costs after an unrelated commit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.gateway_bench import free_port
from benchmarks.generate import commit_all, generate_repository
from reconciler.cli import wiring
from reconciler.cli.options import Settings
from reconciler.engine.reconciler import Reconciler
from tests.support.cluster import RealCluster, real_api_server
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


@contextmanager
def fake_api(folder: Path) -> Iterator[tuple[Path, str]]:
    """The local API server in a process of its own: (kubeconfig, namespace)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.support.kube", str(port)])
    try:
        write_kubeconfig(folder / "fake.kubeconfig", f"http://127.0.0.1:{port}")
        time.sleep(0.5)  # the API server's socket
        yield folder / "fake.kubeconfig", "scp"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def real_api() -> Iterator[tuple[Path, str] | None]:
    with real_api_server() as servers:
        if servers is None:
            yield None
            return
        cluster = RealCluster(servers)
        assert servers.user_kubeconfig is not None
        yield servers.user_kubeconfig, cluster.namespace


def engine_for(root: Path, home: Path, state: str | None, kubeconfig: Path | None) -> Reconciler:
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig)
    settings = Settings(repo=str(root), home=home, approval="none", state=state, dev_allow_loopback_webhooks=True)
    engine = wiring.reconciler(settings, reads_repository=True, long_running=True)  # as `run` builds it
    applied = engine.apply()
    if state is not None:
        deadline = time.monotonic() + 30  # the watch's first LIST
        while not str(engine.stores.partners.version()).startswith("watch:") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert all(result.ok for result in applied.results), [r for r in applied.results if not r.ok][:3]
    return engine


def compare(root: Path, folder: Path, name: str, kubeconfig: Path, namespace: str) -> dict[str, float]:
    engines = {
        "sqlite": engine_for(root, folder / f"{name}-sqlite", None, None),
        "kubernetes": engine_for(root, folder / name, f"kubernetes://{namespace}", kubeconfig),
    }
    timings: dict[tuple[str, bool], list[float]] = {}
    for _ in range(ROUNDS):
        for memo in (True, False):
            for engine_name, engine in engines.items():
                timings.setdefault((engine_name, memo), []).append(best(engine, memo=memo))
    for engine in engines.values():
        engine.close()
    loop = min(timings["kubernetes", True]) / min(timings["sqlite", True])
    full = min(timings["kubernetes", False]) / min(timings["sqlite", False])
    kubernetes_ms, sqlite_ms = min(timings["kubernetes", False]) * 1000, min(timings["sqlite", False]) * 1000
    loop_ms = min(timings["kubernetes", True]) * 1000, min(timings["sqlite", True]) * 1000
    target = " (target <= 1.5x)" if name == "real" else ""
    print(f"reconcile pass with nothing to do, {PARTNERS} partners, Kubernetes state ({name} API server) vs "
          f"SQLite: {loop:.2f}x as the loop runs it{target} ({loop_ms[0]:.1f} ms vs {loop_ms[1]:.1f} ms), "
          f"{full:.2f}x a full comparison "
          f"({kubernetes_ms:.0f} ms vs {sqlite_ms:.0f} ms)")  # fmt: skip
    return {f"cluster_{name}_loop_ratio": loop, f"cluster_{name}_full_ratio": full}


def main() -> dict[str, float]:
    os.environ["PARTNERCTL_NOW"] = NOW
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder_name:
        folder = Path(folder_name)
        root = folder / "repo"
        generate_repository(root, PARTNERS)
        commit_all(root)
        with real_api() as real:
            if real is None:
                print("cluster bench against the real API server: skipped (no Go to build it; run make kube)")
            else:
                figures |= compare(root, folder, "real", *real)
        with fake_api(folder) as fake:
            figures |= compare(root, folder, "fake", *fake)
    return figures


if __name__ == "__main__":
    main()
