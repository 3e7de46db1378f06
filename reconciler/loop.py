"""The reconcile loop (``partnerctl run``): apply, sleep with jitter, back off on errors, stop cleanly.

The webhook dispatcher runs alongside in a thread. SIGTERM (or SIGINT) sets a stop flag: the apply
in progress finishes the partner it is on and the loop exits with status 0.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from reconciler import clock
from reconciler.dispatch import Dispatcher
from reconciler.errors import ReconcilerError
from reconciler.metrics import Metrics
from reconciler.reconcile import ApplyOutcome, Reconciler

MAX_BACKOFF = 600.0


def run_loop(
    engine: Reconciler,
    dispatcher: Dispatcher,
    *,
    interval: float,
    once: bool,
    report: Callable[..., None],
    metrics: Metrics | None = None,
) -> int:
    stop = threading.Event()
    if metrics is not None:
        dispatcher.on_results = metrics.observe_deliveries

    def on_signal(signum: int, frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}: finishing the current action, then exiting", level="warning")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(
        target=dispatcher.run, kwargs={"once": once, "interval": 2.0, "stop": stop}, name="dispatcher", daemon=True
    )
    worker.start()
    failures, code = 0, 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                outcome = engine.apply(stop=stop)
                failures = 0
                code = 0 if outcome.ok else 1
                report(summary(outcome), revision=outcome.revision)
                for result in outcome.results:
                    report(
                        f"{result.action} {'ok' if result.ok else 'failed: ' + str(result.error)}",
                        revision=outcome.revision, partner=result.partner, level="info" if result.ok else "error",
                    )  # fmt: skip
                if metrics is not None:
                    metrics.observe_apply(outcome, time.monotonic() - started)
                    metrics.observe_state(engine.state.partners(), engine.secrets.live_credentials(), clock.now())
                    metrics.ready = True
            except ReconcilerError as error:
                failures += 1
                code = error.exit_code
                report(f"reconcile failed ({failures} in a row): {error}", level="error")
                if metrics is not None:
                    metrics.ready = False
            if once:
                break
            pause = interval if failures == 0 else min(MAX_BACKOFF, interval * 2 ** min(failures, 10))
            stop.wait(pause * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security
    finally:
        stop.set()
        if metrics is not None:
            metrics.alive = False
        worker.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if not once else code


def summary(outcome: ApplyOutcome) -> str:
    failed = sum(1 for result in outcome.results if not result.ok)
    return (
        f"revision {outcome.revision[:12]}: {len(outcome.results) - failed} action(s) done, {failed} failed, "
        f"{len(outcome.checks)} check(s)"
    )


def reporter(*, json_lines: bool, echo: Callable[[str], None]) -> Callable[..., None]:
    """Log lines for ``run``: plain text, or one JSON object per line with the partner and revision."""

    def report(message: str, *, level: str = "info", revision: str | None = None, partner: str | None = None) -> None:
        if json_lines:
            record = {"time": clock.now().isoformat(), "level": level, "msg": message,
                      "revision": revision, "partner": partner}  # fmt: skip
            echo(json.dumps(record, sort_keys=True))
        else:
            where = " ".join(part for part in (partner, revision[:12] if revision else None) if part)
            echo(f"partnerctl run: {where + ': ' if where else ''}{message}")

    return report
