"""The partner gateway (DESIGN §7): OAuth2 client credentials, the handshake, and scope enforcement.

A plain ASGI application (served by uvicorn). It reads the stores the reconciler writes, and
re-reads a partner whenever either store's version moves, so new, rotated,
suspended and revoked credentials take effect without a restart, and every request is checked
against the partner's *current* approved scopes, not only those in its token.

    POST /oauth2/token            RFC 6749 §4.4; client auth by HTTP Basic or form body
    GET  /.well-known/jwks.json   the public key of the token signatures
    GET  /v1/ping                 the handshake: any valid token
    GET  /authz                   auth_request decision for NGINX/Envoy/Kong (X-Original-Method/-URI)
    POST /internal/events         platform services publish events (platform-service token)
    GET  /healthz                 liveness
    *    <catalog routes>         checked, then forwarded to --upstream
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote_plus

from reconciler import clock
from reconciler.credentials import Credential
from reconciler.engine.journal import Journal
from reconciler.errors import Busy, Stalled, StoreUnavailable
from reconciler.gateway.forwarding import Upstream, UpstreamUnavailable
from reconciler.gateway.routes import Route, RouteTable
from reconciler.gateway.tokens import AccessToken, TokenAuthority, TokenError
from reconciler.stores import Stores
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Event
from reconciler.webhooks.events import EventError, platform_token_valid, publish

__all__ = ["Gateway"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

log = logging.getLogger("partnerctl.gateway")
UNAVAILABLE_LOG_SECONDS = 10.0

REALM = "scp"
SYNC_WRITE_INTERVAL = 60.0  # seconds between lastSuccessfulSync writes for ordinary API calls
MAX_BODY_BYTES = 1024 * 1024
STORE_THREADS = 16  # store and Vault calls run here, never on the event loop
# Seconds to come back after, by what kept the store from answering (subclasses included).
RETRY_AFTER: tuple[tuple[type[Exception], str], ...] = ((Busy, "1"), (StoreUnavailable, "5"), (Stalled, "30"))
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
               b"transfer-encoding", b"upgrade", b"host", b"authorization", b"content-length"}  # fmt: skip
_IDENTITY_HEADERS = (b"x-partner", b"x-client-id", b"x-partner-scopes")


@dataclass(frozen=True)
class Caller:
    """Who is calling, as of now: the token's identity with the partner's current approved scopes."""

    token: AccessToken
    partner: str
    scopes: frozenset[str]


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        denial: tuple[Caller, str, str, str] | None = None,
    ) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body, self.headers = status, body, headers or {}
        self.denial = denial  # PRIV-01: audited by the caller, off the event loop


class Directory:
    """Partners and credentials as the stores hold them now, cached until a store's counter moves.

    A store without a counter (Vault) is asked every time; it answers from its own short cache."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._state_version: str | None = None
        self._secrets_version: str | None = None
        self._records: dict[str, PartnerRecord | None] = {}
        self._credentials: dict[str, list[Credential]] = {}
        self.routes = RouteTable(None)
        self._routes_loaded = False

    def refresh(self) -> None:
        state_version, secrets_version = self.stores.partners.version(), self.stores.secrets.version()
        state_moved = state_version != self._state_version or state_version is None
        if state_moved or not self._routes_loaded:
            self._state_version = state_version
            self._records.clear()
            self.routes = RouteTable(self.stores.journal.setting("catalog"))
            self._routes_loaded = True
        if state_moved and state_version is not None:
            # A revocation is recorded with the partner's record: a store announcing record changes
            # (PostgreSQL's NOTIFY) makes credentials cached here or in a remote secret store stale too.
            self.stores.secrets.forget()
            self._credentials.clear()
        if secrets_version != self._secrets_version or secrets_version is None:
            self._secrets_version = secrets_version
            self._credentials.clear()

    def partner(self, key: str) -> tuple[PartnerRecord | None, list[Credential]]:
        if key not in self._records:
            self._records[key] = self.stores.partners.partner(key)
        if key not in self._credentials:
            self._credentials[key] = [c for c in self.stores.secrets.credentials(key) if c.live]
        return self._records[key], self._credentials[key]


class Gateway:
    def __init__(self, stores: Stores, *, issuer: str, upstream: Upstream | None = None) -> None:
        self.stores = stores
        self.directory = Directory(stores)
        self.tokens = TokenAuthority(stores.secrets, issuer=issuer)
        self.journal = Journal(stores, actor="gateway")
        self.upstream = upstream
        self._last_sync: dict[str, float] = {}
        self._outages: dict[str, tuple[float, int]] = {}  # message -> (last logged, refused since)
        self._threads = ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="gateway-store")

    async def _off_loop(self, call: Callable[[], T]) -> T:
        """Run a store (or Vault) call in the gateway's threads: a slow store never stalls other requests."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    # --- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            if path == "/oauth2/token":
                if method != "POST":
                    raise Refusal(405, {"error": "invalid_request", "error_description": "use POST"})
                await self._token(scope, receive, send)
            elif path == "/.well-known/jwks.json" and method == "GET":
                await _respond(send, 200, self.tokens.jwks(), {"cache-control": "public, max-age=300"})
            elif path == "/healthz":
                await _respond(send, 200, {"status": "ok"})
            elif path == "/v1/ping" and method == "GET":
                authorization = _header(scope, b"authorization")
                caller = await self._off_loop(lambda: self._identify(authorization))
                await self._off_loop(lambda: self._record_handshake(caller))
                pong = {"pong": True, "partner": caller.partner, "client_id": caller.token.client_id,
                        "scopes": sorted(caller.scopes)}  # fmt: skip
                await _respond(send, 200, pong)
            elif path == "/authz":
                await self._authz(scope, send)
            elif path == "/internal/events" and method == "POST":
                await self._publish(scope, receive, send)
            else:
                await self._api(scope, receive, send)
        except Refusal as refusal:
            if refusal.denial is not None:
                denial = refusal.denial
                await self._off_loop(lambda: self._record_denial(*denial))
            await _respond(send, refusal.status, refusal.body, refusal.headers)
        except (StoreUnavailable, Busy, Stalled) as error:  # no answer from a store: say when to come back
            self._warn_unavailable(f"{type(error).__name__}: {error}")
            description = "a backing store is unavailable; retry later"
            wait = next(seconds for kind, seconds in RETRY_AFTER if isinstance(error, kind))
            headers = {"retry-after": wait, "cache-control": "no-store"}
            await _respond(send, 503, {"error": "temporarily_unavailable", "error_description": description}, headers)

    def _warn_unavailable(self, message: str) -> None:
        """Log a store's outage once per message every UNAVAILABLE_LOG_SECONDS, with how many requests it
        refused meanwhile: under load an outage is hundreds of 503s a second, not hundreds of log lines."""
        now = time.monotonic()
        last, refused = self._outages.get(message, (0.0, 0))
        if now - last < UNAVAILABLE_LOG_SECONDS:
            self._outages[message] = (last, refused + 1)
            return
        suffix = f" ({refused} more requests refused since the last report)" if refused else ""
        log.warning("answering 503: %s%s", message, suffix)
        if len(self._outages) > 100:
            self._outages.clear()
        self._outages[message] = (now, 0)

    # --- OAuth2 token endpoint ------------------------------------------------------------------

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        no_store = {"cache-control": "no-store", "pragma": "no-cache"}
        form = parse_qs((await _body(receive)).decode("utf-8", "replace"), keep_blank_values=True)
        field = {name: values[0] for name, values in form.items()}
        basic = _basic_credentials(_header(scope, b"authorization"))
        if any(len(values) > 1 for values in form.values()):
            raise Refusal(400, {"error": "invalid_request", "error_description": "repeated parameter"}, no_store)
        grant = field.get("grant_type")
        if not grant:
            raise Refusal(400, {"error": "invalid_request", "error_description": "grant_type is required"}, no_store)
        if grant != "client_credentials":
            raise Refusal(400, {"error": "unsupported_grant_type"}, no_store)
        if basic is not None and ("client_secret" in field or "client_id" in field):
            raise Refusal(400, {"error": "invalid_request",
                                "error_description": "use one client authentication method"}, no_store)  # fmt: skip
        client_id, secret = basic if basic is not None else (field.get("client_id"), field.get("client_secret"))
        challenge = {"www-authenticate": f'Basic realm="{REALM}"'} if basic is not None else {}
        found = await self._off_loop(lambda: self._authenticate(client_id, secret))
        if found is None:
            raise Refusal(401, {"error": "invalid_client"}, {**no_store, **challenge})
        credential, record = found
        approved = record.scopes
        requested = field.get("scope")
        scopes = approved
        if requested is not None:
            wanted = requested.split()
            if not wanted or not set(wanted) <= set(approved):
                raise Refusal(400, {"error": "invalid_scope",
                                    "error_description": "ask for approved scopes only"}, no_store)  # fmt: skip
            scopes = [scope for scope in approved if scope in wanted]
        token = self.tokens.issue(client_id=credential.client_id, partner=credential.partner, scopes=scopes,
                                  generation=credential.generation, now=clock.now())  # fmt: skip
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.lifetime,
                  "scope": " ".join(scopes)}  # fmt: skip
        await _respond(send, 200, answer, no_store)

    def _authenticate(self, client_id: str | None, secret: str | None) -> tuple[Credential, PartnerRecord] | None:
        """The live credential and usable partner these client credentials belong to (in a store thread)."""
        if not client_id or not secret:
            return None
        self.directory.refresh()
        credential = self.stores.secrets.verify(client_id, secret)
        record = self.directory.partner(credential.partner)[0] if credential else None
        if credential is None or record is None or not record.usable:
            return None
        return credential, record

    # --- bearer tokens and routes ---------------------------------------------------------------

    def _identify(self, authorization: str | None) -> Caller:
        """The caller of a bearer token, against the stores as they are now (in a store thread)."""
        self.directory.refresh()
        return self._caller(authorization)

    def _caller(self, authorization: str | None) -> Caller:
        """The caller of a bearer token, checked against the directory (refreshed by the caller)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Refusal(401, {"error": "invalid_request", "error_description": "a Bearer token is required"},
                          {"www-authenticate": f'Bearer realm="{REALM}"'})  # fmt: skip
        invalid = {"www-authenticate": f'Bearer realm="{REALM}", error="invalid_token"'}
        try:
            token = self.tokens.verify(authorization[7:].strip(), now=clock.now())
        except TokenError as error:
            raise Refusal(401, {"error": "invalid_token", "error_description": str(error)}, invalid) from error
        record, credentials = self.directory.partner(token.partner)
        live = any(c.generation == token.generation and c.client_id == token.client_id for c in credentials)
        if not live or record is None or not record.usable:
            raise Refusal(401, {"error": "invalid_token", "error_description": "credential no longer valid"}, invalid)
        return Caller(token, token.partner, frozenset(token.scopes) & frozenset(record.scopes))

    def _decide(self, method: str, path: str, authorization: str | None) -> tuple[Caller, Route]:
        """Whether this request may pass (in a store thread): a catalog route, a valid token, the route's scope."""
        self.directory.refresh()
        route = self.directory.routes.match(method, path)
        if route is None:
            raise Refusal(404, {"error": "not_found", "error_description": f"{method} {path} is not a platform route"})
        caller = self._caller(authorization)
        if route.scope not in caller.scopes:
            challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{route.scope}"'
            raise Refusal(403, {"error": "insufficient_scope", "scope": route.scope},
                          {"www-authenticate": challenge}, denial=(caller, method, path, route.scope))  # fmt: skip
        return caller, route

    async def _authz(self, scope: Scope, send: Send) -> None:
        method = (_header(scope, b"x-original-method") or "GET").upper()
        uri = _header(scope, b"x-original-uri") or "/"
        authorization = _header(scope, b"authorization")
        caller, _ = await self._off_loop(lambda: self._decide(method, uri.split("?", 1)[0], authorization))
        await self._note_sync(caller)
        await _respond(send, 200, {"allowed": True}, _identity(caller))

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path, authorization = scope["method"], scope["path"], _header(scope, b"authorization")
        caller, _ = await self._off_loop(lambda: self._decide(method, path, authorization))
        if self.upstream is None:
            raise Refusal(502, {"error": "no_upstream", "error_description": "the gateway has no --upstream"})
        headers = [(name, value) for name, value in scope["headers"]
                   if name.lower() not in _HOP_BY_HOP and name.lower() not in _IDENTITY_HEADERS]  # fmt: skip
        headers += [(name.encode(), value.encode()) for name, value in _identity(caller).items()]
        query = scope.get("query_string", b"").decode()
        try:
            answer = await self.upstream.forward(method, path, query, headers, await _body(receive))
        except UpstreamUnavailable as error:
            raise Refusal(502, {"error": "upstream_unavailable"}) from error
        await self._note_sync(caller)
        passed = [(k.encode(), v.encode()) for k, v in answer.headers if k.encode() not in _HOP_BY_HOP]
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [*passed, (b"content-length", str(len(answer.body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.body})

    async def _publish(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Platform services hand events to the dispatcher (a platform-service token, not a partner's)."""
        authorization = _header(scope, b"authorization") or ""
        presented = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not await self._off_loop(lambda: platform_token_valid(self.stores.secrets, presented)):
            raise Refusal(401, {"error": "invalid_token"}, {"www-authenticate": f'Bearer realm="{REALM}-platform"'})
        try:
            body = json.loads(await _body(receive))
            if not isinstance(body, dict) or not isinstance(body.get("type"), str):
                raise ValueError('expected {"type": ..., "data": {...}}')
            event, count = await self._off_loop(lambda: publish(self.stores, body["type"], body.get("data"),
                                                                now=clock.now()))  # fmt: skip
        except (ValueError, EventError) as error:
            raise Refusal(400, {"error": "invalid_event", "error_description": str(error)}) from error
        await _respond(send, 202, {"event": event.id, "type": event.type, "deliveries": count})

    # --- recording (in store threads) ---------------------------------------------------------------

    def _record_handshake(self, caller: Caller) -> None:
        now = clock.now()
        with self.journal.exclusive():
            record = self.stores.partners.partner(caller.partner)
            if record is None:
                return
            events = []
            if record.handshake_at is None:
                details = {"clientId": caller.token.client_id, "generation": caller.token.generation}
                events.append(self.journal.event(Event.HANDSHAKE_VERIFIED, caller.partner, details))
            record.handshake_at = record.last_successful_sync = now.isoformat()
            self.journal.record([record], events, now=now)

    def _record_denial(self, caller: Caller, method: str, path: str, scope: str) -> None:
        details = {"code": "PRIV-01", "method": method, "path": path, "requiredScope": scope,
                   "clientId": caller.token.client_id}  # fmt: skip
        with self.journal.exclusive():
            self.journal.record([], [self.journal.event(Event.ACCESS_DENIED, caller.partner, details)], now=clock.now())

    async def _note_sync(self, caller: Caller) -> None:
        """lastSuccessfulSync after an API call, written at most once a minute per partner."""
        now = clock.now()
        if now.timestamp() - self._last_sync.get(caller.partner, 0.0) < SYNC_WRITE_INTERVAL:
            return
        self._last_sync[caller.partner] = now.timestamp()
        await self._off_loop(lambda: self._write_sync(caller.partner, now.isoformat()))

    def _write_sync(self, partner: str, moment: str) -> None:
        with self.journal.exclusive():
            record = self.stores.partners.partner(partner)
            if record is not None:
                record.last_successful_sync = moment
                self.journal.record([record], [], now=clock.now())

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _identity(caller: Caller) -> dict[str, str]:
    return {"x-partner": caller.partner, "x-client-id": caller.token.client_id,
            "x-partner-scopes": " ".join(sorted(caller.scopes))}  # fmt: skip


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def _body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) past ``limit`` bytes so nobody can exhaust the gateway's memory."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, {"error": "request_too_large", "error_description": f"bodies are at most {limit} bytes"})
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
