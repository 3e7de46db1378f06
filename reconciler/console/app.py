"""The console (DESIGN §13): a read-only ASGI app showing partners at a glance to Tenant Admins.

Server-rendered pages (Jinja2, autoescaped), no external assets and no script, under a strict
Content-Security-Policy; every page also answers as JSON with ``Accept: application/json``. It reads
the stores the reconciler writes, as the gateway does, and shows the state as of the last reconcile.

    GET /                           partners: badges, last sync, rotation and review due, webhooks; filters
    GET /partners/{tenant}/{name}   one partner: conditions, approvals, scopes, credential, charts, audit
    GET /pending                    blocked changes and who may approve them
    GET /report, /report.{md,csv,json,html}   the compliance report of the viewer's tenants
    GET /healthz                    liveness (no sign-in)

Sign-in is an authenticating proxy's: ``X-Forwarded-Email`` counts only from a trusted proxy address
(:mod:`reconciler.console.viewers`); a viewer sees the tenants whose approvers list their email.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from reconciler import clock
from reconciler.console import views
from reconciler.console.chart import delivery_chart
from reconciler.console.viewers import Network, Viewer, viewer_for
from reconciler.engine.executor import APPROVERS
from reconciler.engine.report import build_report
from reconciler.engine.report_formats import MEDIA_TYPES, render
from reconciler.errors import Busy, Stalled, StoreUnavailable
from reconciler.stores import Stores
from reconciler.vocabulary import Health, Phase

__all__ = ["CSP", "Console"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HERE = Path(__file__).parent
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")  # fmt: skip
SECURITY_HEADERS = {
    "content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
    "x-frame-options": "DENY", "cache-control": "no-store", "vary": "Accept, X-Forwarded-Email",
}  # fmt: skip
REPORT_FILES = {"md": "markdown", "csv": "csv", "json": "json", "html": "html"}
REPORT_LABELS = (("md", "Markdown (for people)"), ("csv", "CSV (for spreadsheets)"), ("json", "JSON (for machines)"),
                 ("html", "HTML (for print)"))  # fmt: skip


class Answer(Exception):
    """An early answer: an error page (or JSON) with ``status``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class Console:
    def __init__(
        self,
        stores: Stores,
        *,
        trusted_proxies: tuple[Network, ...] = (),
        root_approvers: frozenset[str] = frozenset(),
    ) -> None:
        self.stores = stores
        self.trusted_proxies = trusted_proxies
        self.root_approvers = frozenset(email.lower() for email in root_approvers)
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)  # fmt: skip
        self.templates.globals.update(badge=_badge, badges=views.BADGES, chart=_chart)
        self.stylesheet = (HERE / "static" / "console.css").read_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        query = {name: values[-1] for name, values in parse_qs(scope.get("query_string", b"").decode()).items()}
        wants_json = "application/json" in _header(scope, b"accept")
        try:
            if method not in ("GET", "HEAD"):
                raise Answer(405, "Read-only", "The console only shows; changes go through pull requests.")
            if path == "/healthz":
                await _send(send, 200, json.dumps({"status": "ok"}).encode(), "application/json")
                return
            if path == "/static/console.css":
                await _send(send, 200, self.stylesheet, "text/css; charset=utf-8", {"cache-control": "max-age=300"})
                return
            viewer = await asyncio.to_thread(self._viewer, scope)
            await self._page(send, path, query, viewer, wants_json)
        except Answer as answer:
            await self._error(send, answer, wants_json)
        except (StoreUnavailable, Busy, Stalled):
            await self._error(send, Answer(503, "Unavailable", "A backing store is unavailable; retry shortly."),
                              wants_json, {"retry-after": "5"})  # fmt: skip

    def _viewer(self, scope: Scope) -> Viewer:
        client = scope.get("client")
        peer = client[0] if client else None
        approvers = self.stores.journal.setting(APPROVERS) or {}
        viewer = viewer_for(peer, _header(scope, b"x-forwarded-email") or None, trusted=self.trusted_proxies,
                            approvers=approvers, root_approvers=self.root_approvers)  # fmt: skip
        if viewer is None:
            raise Answer(403, "Sign in", "Open the console through your organisation's sign-in (the "
                                         "authenticating proxy); this request did not come through it.")
        if not viewer.everything and not viewer.tenants:
            raise Answer(403, "No tenant", f"{viewer.email} is not an approver of any tenant, so there is nothing "
                                           "to show. A tenant's policy lists its approvers.")
        return viewer

    async def _page(self, send: Send, path: str, query: dict[str, str], viewer: Viewer, wants_json: bool) -> None:
        now = clock.now()
        if path == "/":
            data = await asyncio.to_thread(views.partners_page, self.stores, viewer, query, now)
            await self._render(send, "partners.html", data, query, wants_json, section="partners")
        elif path.startswith("/partners/") and path.count("/") == 3:
            key = path.removeprefix("/partners/")
            page = int(query["page"]) if query.get("page", "").isdigit() else 1
            try:
                data = await asyncio.to_thread(views.partner_page, self.stores, viewer, key, now, page)
            except views.NotVisible:
                raise Answer(403, "Not yours", "There is no such partner among your tenants.") from None
            await self._render(send, "partner.html", data, query, wants_json, section="partners")
        elif path == "/pending":
            data = await asyncio.to_thread(views.pending_page, self.stores, viewer)
            await self._render(send, "pending.html", data, query, wants_json, section="pending")
        elif path == "/report":
            tenants = None if viewer.everything else sorted(viewer.tenants)
            data = {"reconciled": views.reconciled(self.stores), "viewer": viewer.email, "tenants": tenants,
                    "downloads": [f"/report.{suffix}" for suffix, _ in REPORT_LABELS]}  # fmt: skip
            await self._render(send, "report.html", data, query, wants_json, section="report",
                               formats=REPORT_LABELS)  # fmt: skip
        elif path.startswith("/report.") and path.removeprefix("/report.") in REPORT_FILES:
            suffix = path.removeprefix("/report.")
            form = REPORT_FILES[suffix]
            text = await asyncio.to_thread(self._report, viewer, form, now)
            disposition = {"content-disposition": f'attachment; filename="partnerctl-report.{suffix}"'}
            await _send(send, 200, text.encode(), MEDIA_TYPES[form], disposition)
        else:
            raise Answer(404, "Not found", "There is no such page.")

    def _report(self, viewer: Viewer, form: str, now: datetime) -> str:
        document = build_report(self.stores, revision=views.reconciled(self.stores)["revision"], now=now)
        if not viewer.everything:
            document["partners"] = [p for p in document["partners"] if viewer.sees(p["partner"].split("/", 1)[0])]
            document["tenant"] = ", ".join(sorted(viewer.tenants))
        return render(document, form)

    async def _render(
        self, send: Send, template: str, data: dict[str, Any], query: dict[str, str], wants_json: bool,
        **extra: Any,
    ) -> None:  # fmt: skip
        if wants_json:
            await _send(send, 200, json.dumps(data, ensure_ascii=False).encode(), "application/json")
            return
        refresh = _refresh(query.get("refresh"))
        others = {name: value for name, value in query.items() if name != "refresh"}
        page = self.templates.get_template(template).render(
            **data, **extra, refresh=refresh, query_without_refresh=urlencode(others),
            query_with_refresh=urlencode({**others, "refresh": "10"}))  # fmt: skip
        await _send(send, 200, page.encode(), "text/html; charset=utf-8")

    async def _error(self, send: Send, answer: Answer, wants_json: bool, headers: dict[str, str] | None = None) -> None:
        if wants_json:
            body = json.dumps({"error": answer.title, "message": answer.message}).encode()
            await _send(send, answer.status, body, "application/json", headers)
            return
        page = self.templates.get_template("error.html").render(status=answer.status, title=answer.title,
                                                                message=answer.message, reconciled=None)  # fmt: skip
        await _send(send, answer.status, page.encode(), "text/html; charset=utf-8", headers)

    def close(self) -> None:
        self.stores.close()


def _refresh(value: str | None) -> int | None:
    """``?refresh=N``: reload every N seconds (5 to 3600); anything else, no refresh."""
    if value is None or not value.isdigit():
        return None
    return min(max(int(value), 5), 3600)


def _badge(phase: str, health: str) -> str:
    if health == Health.DEGRADED or phase == Phase.SUSPENDED:
        return "bad"
    if phase == Phase.ACTIVE and health == Health.HEALTHY:
        return "ok"
    return "warn" if phase in (Phase.PROVISIONING, Phase.AWAITING_HANDSHAKE, Phase.PENDING_APPROVAL) else "muted"


def _chart(hook: dict[str, Any]) -> Markup:
    """The SVG is built from day strings and counts only, each escaped: safe to place as markup."""
    return Markup(delivery_chart(hook["days"], title=f"Deliveries of {hook['name']}, last 14 days"))  # noqa: S704


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _send(send: Send, status: int, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(name.encode(), value.encode()) for name, value in {**SECURITY_HEADERS, **(headers or {})}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
