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
from typing import TYPE_CHECKING

from reconciler import clock
from reconciler.engine.metrics import Metrics
from reconciler.engine.reconciler import ApplyOutcome, Reconciler
from reconciler.errors import ReconcilerError
from reconciler.webhooks.dispatcher import Dispatcher

if TYPE_CHECKING:
    from reconciler.backends.kubernetes.leader import LeaseElector

MAX_BACKOFF = 600.0


def run_loop(
    engine: Reconciler,
    dispatcher: Dispatcher,
    *,
    interval: float,
    once: bool,
    report: Callable[..., None],
    metrics: Metrics | None = None,
    leadership: LeaseElector | None = None,
) -> int:
    """Reconcile until stopped; with ``leadership``, only while holding the Lease (a standby waits)."""
    stop = threading.Event()
    halt = _Halt(stop, leadership)
    if metrics is not None:
        dispatcher.on_results = metrics.observe_deliveries

    def on_signal(signum: int, frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}: finishing the current action, then exiting", level="warning")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    active = leadership.is_leader if leadership is not None else None
    worker = threading.Thread(
        target=dispatcher.run, kwargs={"once": once, "interval": 2.0, "stop": stop, "active": active},
        name="dispatcher", daemon=True,
    )  # fmt: skip
    if leadership is not None:
        leadership.start()
        report(f"leader election: {leadership.identity} campaigns for Lease {leadership.namespace}/{leadership.name}")
    worker.start()
    failures, code, leading = 0, 0, False
    try:
        while not stop.is_set():
            if leadership is not None and not leadership.is_leader():
                if leading:
                    report("lost the lease: stopped applying; standing by", level="warning")
                leading = False
                if metrics is not None:
                    metrics.ready = leadership.last_error is None  # a healthy standby is ready
                stop.wait(leadership.retry_period)
                continue
            if leadership is not None and not leading:
                report(f"acquired the lease as {leadership.identity}: applying")
                leading = True
            started = time.monotonic()
            try:
                outcome = engine.apply(stop=halt)
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
        if leadership is not None:
            leadership.stop()  # releases the Lease: a standby takes over at once
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if not once else code


class _Halt:
    """What an apply checks between partners: SIGTERM, or the Lease lost."""

    def __init__(self, stop: threading.Event, leadership: LeaseElector | None) -> None:
        self._stop, self._leadership = stop, leadership

    def is_set(self) -> bool:
        return self._stop.is_set() or (self._leadership is not None and not self._leadership.is_leader())


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
