"""The console's partners page over 10,000 partners, as a ratio of ``partnerctl status --output json`` over the same
installation (issue 18: target at most 5x).

Both run in this process over the same stores, side by side, best of several rounds: the status command's
work (every partner's status, its scope usage, one JSON document) against one request to the console's ASGI
app for ``/`` (every partner's row, sorted, rendered to HTML), without the sockets on either side.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.engine_bench import NOW, applied
from reconciler.cli import wiring
from reconciler.cli.options import Settings
from reconciler.cli.status_commands import _add_scope_usage

PARTNERS = int(10_000 * float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1")))
ROUNDS = 5


def status_json(settings: Settings) -> int:
    """What ``partnerctl status --output json`` does once its stores are open."""
    with wiring.reconciler(settings) as engine:
        entries = engine.status()
        _add_scope_usage(entries, engine.stores)
        return len(json.dumps({"partners": entries}, indent=2, ensure_ascii=False))


async def partners_page(app: Any) -> int:
    """One GET / through the console's ASGI app; the size of the page."""
    body: list[bytes] = []
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        else:
            body.append(message["body"])

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 50000)}  # fmt: skip
    await app(scope, receive, send)
    assert status == [200], status
    return sum(len(part) for part in body)


def main() -> dict[str, float]:
    os.environ["PARTNERCTL_NOW"] = NOW
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root, home, _, _ = applied(Path(folder), PARTNERS)
        settings = Settings(repo=str(root), home=home, approval="none")
        app = wiring.console(settings)
        baseline, measured, sizes = [], [], (0, 0)
        for _ in range(ROUNDS):
            start = time.perf_counter()
            status_size = status_json(settings)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            page_size = asyncio.run(partners_page(app))
            measured.append(time.perf_counter() - start)
            sizes = (status_size, page_size)
        app.close()
    ratio = min(measured) / min(baseline)
    print(f"console partners page over {PARTNERS:,} partners ({sizes[1] / 1e6:.1f} MB of HTML): {ratio:.2f}x "
          f"status --output json ({sizes[0] / 1e6:.1f} MB) (target <= 5)")  # fmt: skip
    return {"console_partners_page_ratio": ratio}


if __name__ == "__main__":
    main()
