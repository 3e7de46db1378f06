"""Prometheus metrics and the liveness/readiness endpoints of ``partnerctl run`` (``--metrics-port``).

GET /metrics   reconcile duration, actions by name and result, partners by phase and health,
               last successful sync and credential age per partner, webhook delivery results
GET /healthz   200 while the loop is alive
GET /readyz    200 once a reconcile has succeeded, 503 before (and after a failed one)
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

from reconciler import clock
from reconciler.credentials import Credential, active_credential
from reconciler.engine.reconciler import ApplyOutcome, Reconciler
from reconciler.errors import UsageError
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Health, Phase

__all__ = ["Metrics"]


class Metrics:
    """The loop's :class:`~reconciler.engine.loop.Observer`, exposed in Prometheus' format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconcile_seconds = Histogram(
            "partnerctl_reconcile_duration_seconds", "Duration of one reconcile (plan, apply, checks).",
            registry=self.registry, buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )  # fmt: skip
        self.actions = PromCounter(
            "partnerctl_actions_total", "Actions executed, by action and result.", ["action", "result"],
            registry=self.registry,
        )  # fmt: skip
        self.partners = Gauge(
            "partnerctl_partners", "Partners by phase and health.", ["phase", "health"], registry=self.registry
        )
        self.last_sync = Gauge(
            "partnerctl_partner_last_successful_sync_timestamp_seconds",
            "Last successful exchange with the partner (handshake, API call or webhook delivery).",
            ["partner"], registry=self.registry,
        )  # fmt: skip
        self.credential_age = Gauge(
            "partnerctl_credential_age_seconds", "Age of the partner's active client credential.", ["partner"],
            registry=self.registry,
        )  # fmt: skip
        self.deliveries = PromCounter(
            "partnerctl_webhook_deliveries_total", "Webhook delivery attempts, by result.", ["result"],
            registry=self.registry,
        )  # fmt: skip
        self.ready = False
        self.alive = True
        self._aged: set[str] = set()

    def observe_apply(self, outcome: ApplyOutcome, seconds: float) -> None:
        self.reconcile_seconds.observe(seconds)
        for result in outcome.results + outcome.checks:
            self.actions.labels(result.action, "ok" if result.ok else "failed").inc()

    def observe_state(self, engine: Reconciler) -> None:
        stores = engine.stores
        self.observe_records(stores.partners.partners(), stores.secrets.live_credentials(), clock.now())

    def observe_records(
        self, records: dict[str, PartnerRecord], credentials: dict[str, list[Credential]], now: datetime
    ) -> None:
        counts = Counter((record.phase, record.health) for record in records.values())
        for phase in Phase:
            for health in Health:
                self.partners.labels(phase, health).set(counts.get((phase, health), 0))
        for key, record in records.items():
            if record.last_successful_sync:
                self.last_sync.labels(key).set(datetime.fromisoformat(record.last_successful_sync).timestamp())
            active = active_credential(credentials.get(key, []))
            if active is not None:
                self.credential_age.labels(key).set((now - active.issued_at).total_seconds())
        aged = {key for key, creds in credentials.items() if key in records and active_credential(creds) is not None}
        for key in self._aged - aged:
            self.credential_age.remove(key)
        self._aged = aged

    def observe_deliveries(self, results: Counter[str]) -> None:
        for result, count in results.items():
            self.deliveries.labels(result).inc(count)

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    self._answer(200 if metrics.alive else 503, b"ok\n" if metrics.alive else b"stopping\n")
                elif self.path == "/readyz":
                    self._answer(200 if metrics.ready else 503, b"ready\n" if metrics.ready else b"not ready\n")
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except (OSError, ValueError, TypeError) as error:  # no such address, or not an address at all
            raise UsageError(f"--metrics-host {host} --metrics-port {port}: cannot listen there ({error})") from error
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        return server
