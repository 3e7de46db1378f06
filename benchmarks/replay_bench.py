"""A replay of 100,000 webhook messages alongside live traffic (issue 16).

One partner onboarded with its webhook at a local receiver (a uvicorn process that notes when each live
message arrives), and ``partnerctl``'s dispatcher in a process of its own. Live events are enqueued at
a steady rate, first alone, then while a replay of 100,000 failed messages drains. Printed:

- live latency (enqueued -> received) p50/p99 with the replay as a ratio of live alone (target: p99 <= 2x);
- the replay's delivery rate as a ratio of a bare httpx async POST loop to the same receiver with the
  same limits (DESIGN §10's fan-out target: >= 0.7);
- the dispatcher's resident memory early in the replay and at its end (flat: the replay is one UPDATE,
  a pass holds one batch).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.fanout_bench import CONCURRENCY, PER_ENDPOINT, bare_loop
from benchmarks.gateway_bench import free_port, wait_until_up
from benchmarks.generate import commit_all, generate_repository
from reconciler import clock
from reconciler.backends import open_stores
from reconciler.stores import Stores
from reconciler.stores.records import DeliveryRow, StoredEvent
from reconciler.vocabulary import DeliveryStatus

EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "A. B."}
REPLAYED = int(100_000 * float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1")))
LIVE_PER_SECOND = 50
ALONE_SECONDS = 15
INTERVAL = 0.05  # the dispatcher's pause when nothing is due, in both runs
PARTNERCTL = str(Path(sys.executable).parent / "partnerctl")


# --- the receiver (a process of its own) ---------------------------------------------------------------


def receiver_app() -> Any:
    """An ASGI receiver: 200 to every POST; notes when each live message arrived. GET /log tells."""
    arrived: dict[str, float] = {}
    counted = [0, 0]  # every POST, and the replayed ones

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = b""
        if scope["method"] == "GET" and scope["path"] == "/count":  # cheap: asked often while the replay drains
            body = json.dumps({"count": counted[0], "replayed": counted[1]}).encode()
        elif scope["method"] == "GET":
            body = json.dumps({"count": counted[0], "replayed": counted[1], "live": arrived}).encode()
        else:
            counted[0] += 1
            message = dict(scope["headers"]).get(b"webhook-id", b"").decode()
            if message.startswith("msg_live_"):
                arrived[message] = time.time()
            elif message.startswith("msg_old_"):
                counted[1] += 1
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def receiver_log(url: str, path: str = "/log") -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}{path}", timeout=30).json()
    return answer


# --- the dispatcher (a process of its own) ---------------------------------------------------------------


def run_dispatcher(home: str) -> None:
    from reconciler.webhooks.dispatcher import Dispatcher
    from reconciler.webhooks.sender import HttpTransport

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    dispatcher = Dispatcher(open_stores(home=Path(home)), HttpTransport(allow_loopback=True))
    dispatcher.run(once=False, interval=INTERVAL, stop=stop)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the run -----------------------------------------------------------------------------------------------


def enqueue(stores: Stores, partner: str, webhook: str, message_id: str, received: str) -> None:
    event = StoredEvent(f"evt_{uuid.uuid4().hex}", "payment.status.changed", EVENT, received)
    row = DeliveryRow(0, event.id, partner, webhook, message_id, DeliveryStatus.PENDING, 0, time.time())
    stores.journal.enqueue(event, [row])


def live_traffic(stores: Stores, partner: str, webhook: str, stop: threading.Event, sent: dict[str, float]) -> None:
    """LIVE_PER_SECOND live messages a second until ``stop``; when each was enqueued."""
    n = 0
    start = time.time()
    while not stop.is_set():
        message = f"msg_live_{uuid.uuid4().hex}"
        enqueue(stores, partner, webhook, message, clock.now().isoformat())
        sent[message] = time.time()
        n += 1
        time.sleep(max(0.0, start + n / LIVE_PER_SECOND - time.time()))


def latencies(sent: dict[str, float], arrived: dict[str, float]) -> tuple[float, float]:
    values = sorted(arrived[message] - moment for message, moment in sent.items() if message in arrived)
    assert len(values) == len(sent), f"{len(sent) - len(values)} live messages never arrived"
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def warm_up(stores: Stores, partner: str, webhook: str, url: str) -> None:
    """One live message through a freshly started dispatcher, so its start-up is not counted as latency."""
    message = f"msg_live_warmup_{uuid.uuid4().hex}"
    enqueue(stores, partner, webhook, message, clock.now().isoformat())
    wait_for(lambda: message in receiver_log(url)["live"], 60, "the dispatcher to start")


def seed_failed(stores: Stores, partner: str, webhook: str, count: int) -> None:
    """``count`` messages of half an hour ago that failed: what an outage leaves behind."""
    received = (clock.now() - timedelta(minutes=30)).isoformat()
    for n in range(count):
        enqueue(stores, partner, webhook, f"msg_old_{n}", received)
    rows = [row for row in stores.journal.deliveries() if row.message_id.startswith("msg_old_")]
    failed = [DeliveryRow(row.id, row.event_id, row.partner, row.webhook, row.message_id, DeliveryStatus.FAILED, 8,
                          row.next_attempt_at, 503, "answered 503") for row in rows]  # fmt: skip
    for start in range(0, len(failed), 5000):
        stores.journal.record_attempts(failed[start : start + 5000])


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="partnerctl-replay-") as folder:
        port = free_port()
        receiver = subprocess.Popen([sys.executable, "-m", "benchmarks.replay_bench", "receive", str(port)])
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            return run(Path(folder), url)
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)


def run(folder: Path, url: str) -> dict[str, float]:
    root, home = folder / "repo", folder / "home"
    generate_repository(root, 1, webhook_bases=[url], template="northbridge-bank")
    commit_all(root)
    env = {**os.environ, "PARTNERCTL_HOME": str(home), "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
    subprocess.run([PARTNERCTL, "--repo", str(root), "--approval", "none", "apply"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    stores = open_stores(home=home)
    ((partner, record),) = stores.partners.partners().items()
    (webhook,) = record.webhooks
    command = [sys.executable, "-m", "benchmarks.replay_bench", "dispatch", str(home)]

    # 1. Live traffic alone.
    progress(f"live traffic alone for {ALONE_SECONDS} s")
    dispatcher = subprocess.Popen(command, env=env)
    warm_up(stores, partner, webhook, url)
    alone: dict[str, float] = {}
    stop = threading.Event()
    publisher = threading.Thread(target=live_traffic, args=(stores, partner, webhook, stop, alone))
    publisher.start()
    time.sleep(ALONE_SECONDS)
    stop.set()
    publisher.join()
    wait_for(lambda: len(receiver_log(url)["live"]) >= len(alone), 60, "live messages alone")
    dispatcher.send_signal(signal.SIGTERM)
    dispatcher.wait(timeout=60)
    alone_p50, alone_p99 = latencies(alone, receiver_log(url)["live"])

    # 2. The same live traffic while a replay of REPLAYED messages drains.
    progress(f"seeding {REPLAYED:,} failed messages")
    seed_failed(stores, partner, webhook, REPLAYED)
    progress("replaying them alongside live traffic")
    replay = subprocess.run([PARTNERCTL, "--output", "json", "webhooks", "replay", partner, "--since", "2h"], env=env,
                            check=True, capture_output=True, text=True)  # fmt: skip
    assert json.loads(replay.stdout)["replayed"] == REPLAYED, replay.stdout
    before = receiver_log(url)["replayed"]
    dispatcher = subprocess.Popen(command, env=env)
    started = time.perf_counter()
    warm_up(stores, partner, webhook, url)
    during: dict[str, float] = {}
    stop = threading.Event()
    publisher = threading.Thread(target=live_traffic, args=(stores, partner, webhook, stop, during))
    publisher.start()
    memory: list[float] = []

    def drained() -> bool:
        memory.append(rss_mb(dispatcher.pid))
        return int(receiver_log(url, "/count")["replayed"]) - before >= REPLAYED

    wait_for(drained, 1800, "the replay")
    replay_seconds = time.perf_counter() - started
    stop.set()
    publisher.join()
    wait_for(lambda: set(during) <= set(receiver_log(url)["live"]), 60, "live messages during the replay")
    dispatcher.send_signal(signal.SIGTERM)
    dispatcher.wait(timeout=60)
    during_p50, during_p99 = latencies(during, receiver_log(url)["live"])
    stores.close()

    progress("the bare loop")
    # 3. The bare loop to the same receiver, with the same limits.
    count = min(REPLAYED, 20_000)
    body = json.dumps({"type": "payment.status.changed", "timestamp": clock.now().isoformat(), "data": EVENT}).encode()
    bare = count / asyncio.run(bare_loop([f"{url}/scp"] * count, body))

    # The dispatcher's delivery rate while the replay drained: the replayed messages and the live ones
    # published meanwhile (the publisher stops when the replay has drained).
    rate = (REPLAYED + len(during)) / replay_seconds
    ratio = during_p99 / alone_p99
    early = memory[max(0, len(memory) // 10)] if memory else 0.0
    print(f"replay of {REPLAYED:,} messages alongside {LIVE_PER_SECOND} live messages/s: live p99 "
          f"{during_p99 * 1000:.0f} ms = {ratio:.2f}x live alone ({alone_p99 * 1000:.0f} ms) (target <= 2); "
          f"p50 {during_p50 * 1000:.0f} ms vs {alone_p50 * 1000:.0f} ms")  # fmt: skip
    print(f"  dispatcher delivered {rate:.0f}/s (replayed and live) = {rate / bare:.2f}x a bare httpx async POST "
          f"loop ({bare:.0f}/s) (target >= 0.7), concurrency {CONCURRENCY}, {PER_ENDPOINT} per endpoint")  # fmt: skip
    print(f"  dispatcher memory: {early:.0f} MB early in the replay, {max(memory or [0.0]):.0f} MB peak, "
          f"{memory[-1] if memory else 0.0:.0f} MB at its end (flat: one batch per pass)")  # fmt: skip
    return {"replay_live_p99_ratio": ratio, "replay_fanout_ratio": rate / bare,
            "replay_dispatcher_peak_mb": max(memory or [0.0])}  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        import uvicorn

        uvicorn.run(receiver_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", lifespan="off",
                    access_log=False)  # fmt: skip
    elif sys.argv[1:2] == ["dispatch"]:
        run_dispatcher(sys.argv[2])
    else:
        main()
