"""Webhook fan-out: one event to 1,000 subscriptions, and 10,000 events to 10 subscriptions, on local
receivers, as a ratio of a bare httpx async POST loop to the same receivers with the same concurrency
limits (target: at least 0.7), with the dispatcher's peak memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.gateway_bench import free_port, wait_until_up
from benchmarks.generate import commit_all, generate_repository
from reconciler import clock
from reconciler.backends import open_stores
from reconciler.webhooks.dispatcher import Dispatcher
from reconciler.webhooks.events import publish
from reconciler.webhooks.sender import HttpTransport

EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "A. B."}
RECEIVERS = 2
CONCURRENCY, PER_ENDPOINT = 64, 8


async def bare_loop(urls: list[str], body: bytes, batch: int = 2000) -> float:
    """The baseline: POST the same bodies to the same URLs with the same limits and batches, nothing else."""
    overall = asyncio.Semaphore(CONCURRENCY)
    endpoints: dict[str, asyncio.Semaphore] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:

        async def post(url: str) -> None:
            endpoint = endpoints.setdefault(url.split("/")[2], asyncio.Semaphore(PER_ENDPOINT))
            async with overall, endpoint:
                for attempt in range(2):  # a kept-alive connection the server closed: retried, as we would
                    try:
                        response = await client.post(url, content=body, headers={"content-type": "application/json"})
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        if attempt:
                            raise
                assert response.status_code == 200

        start = time.perf_counter()
        for offset in range(0, len(urls), batch):
            await asyncio.gather(*(post(url) for url in urls[offset : offset + batch]))
        return time.perf_counter() - start


def scenario(name: str, partners: int, events: int, receivers: list[str]) -> tuple[float, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root, home = Path(folder) / "repo", Path(folder) / "home"
        generate_repository(root, partners, webhook_bases=receivers, template="northbridge-bank")
        commit_all(root)
        env = {**os.environ, "PARTNERCTL_HOME": str(home), "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
        subprocess.run([partnerctl, "--repo", str(root), "--approval", "none", "apply"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        stores = open_stores(home=home)
        for _ in range(events):
            publish(stores, "payment.status.changed", EVENT, now=clock.now())
        records = stores.partners.partners().values()
        urls = [hook.url for record in records for hook in record.webhooks.values()] * events
        shaped = {"paymentReference": "p-1", "state": "paid", "amountMinorUnits": 1200}
        body = json.dumps({"type": "payment.status.changed", "timestamp": clock.now().isoformat(), "data": shaped})
        baseline_before = asyncio.run(bare_loop(urls, body.encode()))
        dispatcher = Dispatcher(stores, HttpTransport(allow_loopback=True), concurrency=CONCURRENCY,
                                per_endpoint=PER_ENDPOINT, batch=2000)  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        while asyncio.run(dispatcher.run_once()):
            pass
        ours = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        delivered = sum(1 for row in stores.journal.deliveries() if row.status == "delivered")
        stores.close()
        assert delivered == len(urls), (delivered, len(urls))
        # The baseline before and after ours; the faster one counts (the stricter comparison).
        baseline = min(baseline_before, asyncio.run(bare_loop(urls, body.encode())))
    ratio = baseline / ours
    print(f"fan-out {name}: {len(urls) / ours:.0f} deliveries/s = {ratio:.2f}x a bare httpx async POST loop "
          f"(target >= 0.7); +{grown:.0f} MB peak memory while dispatching (process peak {peak:.0f} MB)")  # fmt: skip
    return ratio, peak


def main() -> dict[str, float]:
    servers, receivers = [], []
    for _ in range(RECEIVERS):
        port = free_port()
        servers.append(subprocess.Popen([sys.executable, "-m", "benchmarks.bare_app", str(port)]))
        receivers.append(f"http://127.0.0.1:{port}")
    try:
        for url in receivers:
            wait_until_up(url)
        scale = float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1"))
        one, one_peak = scenario("1 event x 1,000 subscriptions", int(1000 * scale), 1, receivers)
        many, many_peak = scenario("10,000 events x 10 subscriptions", 10, int(10_000 * scale), receivers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    return {"fanout_1x1000_ratio": one, "fanout_10000x10_ratio": many, "fanout_peak_mb": max(one_peak, many_peak)}


if __name__ == "__main__":
    main()
