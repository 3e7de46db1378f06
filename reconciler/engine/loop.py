"""The reconcile loop (``partnerctl run``): apply, sleep with jitter, retry by the kind of error, stop cleanly.

The webhook dispatcher runs alongside in a thread. SIGTERM (or SIGINT) sets a stop flag: the apply
in progress finishes the partner it is on and the loop exits with status 0.

Errors decide their own handling (``reconciler.errors``): a :class:`~reconciler.errors.Transient`
one (a store briefly away, a lock, a write conflict) is retried soon: after 5 seconds, doubling, never
later than the normal interval. Any other stalls the loop until someone acts: it says so once (and
again only if the problem changes), backs off exponentially up to 10 minutes, and says when it
recovers.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from reconciler import clock
from reconciler.engine.reconciler import ApplyOutcome, Reconciler
from reconciler.errors import ReconcilerError, Transient

__all__ = ["Leadership", "Observer", "Worker", "reporter", "run_loop", "summary"]

MAX_BACKOFF = 600.0
FIRST_RETRY = 5.0


class Leadership(Protocol):
    """An elected leader (a Kubernetes Lease, or a PostgreSQL advisory lock); only the leader applies and
    dispatches. ``namespace``/``name`` say where the lead is held, for the log."""

    identity: str
    namespace: str
    name: str
    retry_period: float
    last_error: str | None

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop campaigning and release the lead, so a standby takes over at once."""

    def is_leader(self) -> bool: ...


class Observer(Protocol):
    """What the loop reports to (Prometheus metrics, /healthz, /readyz)."""

    ready: bool
    alive: bool

    def observe_apply(self, outcome: ApplyOutcome, seconds: float) -> None: ...

    def observe_state(self, engine: Reconciler) -> None: ...


class Worker(Protocol):
    """The webhook dispatcher, run alongside in a thread."""

    def run(
        self,
        *,
        once: bool,
        interval: float,
        stop: Any = None,
        active: Callable[[], bool] | None = None,
        on_error: Callable[[ReconcilerError], None] | None = None,
    ) -> None: ...


def run_loop(
    engine: Reconciler,
    dispatcher: Worker,
    *,
    interval: float,
    once: bool,
    report: Callable[..., None],
    metrics: Observer | None = None,
    leadership: Leadership | None = None,
) -> int:
    """Reconcile until stopped; with ``leadership``, only while holding the lead (a standby waits)."""
    stop = threading.Event()
    halt = _Halt(stop, leadership)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}: finishing the current action, then exiting", level="warning")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    active = leadership.is_leader if leadership is not None else None
    def dispatcher_failed(error: ReconcilerError) -> None:
        report(f"webhook dispatch failed, retrying: {error}", level="warning")

    worker = threading.Thread(
        target=dispatcher.run, name="dispatcher", daemon=True,
        kwargs={"once": once, "interval": 2.0, "stop": stop, "active": active, "on_error": dispatcher_failed},
    )  # fmt: skip
    if leadership is not None:
        leadership.start()
        report(f"leader election: {leadership.identity} campaigns for {leadership.namespace}/{leadership.name}")
    worker.start()
    failures, code, leading = 0, 0, False
    stalled: str | None = None  # the message of the error the loop is stalled on, said once
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
            pause = interval
            try:
                outcome = engine.apply(stop=halt)
                if stalled is not None:
                    report("recovered: reconciling again", revision=outcome.revision)
                failures, stalled = 0, None
                code = 0 if outcome.ok else 1
                report(summary(outcome), revision=outcome.revision)
                for result in outcome.results:
                    report(
                        f"{result.action} {'ok' if result.ok else 'failed: ' + str(result.error)}",
                        revision=outcome.revision, partner=result.partner, level="info" if result.ok else "error",
                    )  # fmt: skip
                if metrics is not None:
                    metrics.observe_apply(outcome, time.monotonic() - started)
                    metrics.observe_state(engine)
                    metrics.ready = True
            except ReconcilerError as error:
                failures += 1
                code = error.exit_code
                if metrics is not None:
                    metrics.ready = False
                if isinstance(error, Transient):
                    pause = min(max(interval, FIRST_RETRY), FIRST_RETRY * 2 ** min(failures - 1, 10))
                    report(f"reconcile failed ({failures} in a row), retrying in {pause:.0f}s: {error}",
                           level="warning")  # fmt: skip
                else:
                    pause = min(MAX_BACKOFF, interval * 2 ** min(failures, 10))
                    if str(error) != stalled:
                        report(f"stalled until this is fixed: {error}", level="error")
                    stalled = str(error)
            if once:
                break
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
    """What an apply checks between partners: SIGTERM, or the lead lost."""

    def __init__(self, stop: threading.Event, leadership: Leadership | None) -> None:
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
