"""The partner gateway (DESIGN §7): OAuth2 client credentials, the handshake, and scope enforcement.

A plain ASGI application (served by uvicorn). It reads the stores the reconciler writes, and
re-reads a partner whenever either store's version moves, so new, rotated,
suspended and revoked credentials take effect without a restart, and every request is checked
against the partner's *current* approved scopes, not only those in its token. Revoked access
tokens are a set kept in memory, read again when the journal's revocations version moves.

    POST /oauth2/token                        RFC 6749 §4.4; client auth by HTTP Basic or form body
    POST /oauth2/revoke                       RFC 7009: a partner revokes its own access tokens
    POST /oauth2/introspect                   RFC 7662: platform services (introspection token) or a
                                              partner about its own tokens (client auth)
    GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
    GET  /.well-known/jwks.json               the public key of the token signatures
    GET  /v1/ping                             the handshake: any valid token
    *    /v1/self…                            the partner's own status, delivery log and replays (selfservice.py)
    GET  /authz                               auth_request decision for NGINX/Envoy/Kong (X-Original-Method/-URI)
    POST /internal/events                     platform services publish events (platform-service token)
    GET  /healthz                             liveness
    *    <catalog routes>                     checked, then forwarded to --upstream

Client authentication happens in one place, :meth:`Gateway._client`, for the token, revocation and
introspection endpoints alike; whether a verified access token still stands is decided in one
place, :meth:`Gateway._live`. Rate limits (:mod:`reconciler.gateway.limits`) apply to those three
endpoints and the API routes (ping, authz, catalog routes), per partner, and to failed client
authentications per client id; every answer to an identified partner or client id carries the
``RateLimit-Policy`` and ``RateLimit`` fields. A request that passes its route's scope check counts one
use of that scope (:mod:`reconciler.gateway.usage`: in memory, written in batches, never a request log).
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
from reconciler.credentials import Credential, client_id_for, partner_of_client
from reconciler.engine.journal import Journal
from reconciler.engine.status import note_key_seen
from reconciler.errors import Busy, Stalled, StoreUnavailable
from reconciler.gateway.assertions import (
    ASSERTION_TYPE,
    AssertionRefused,
    InlineKeys,
    KeySource,
    authenticate,
    unverified_client_id,
)
from reconciler.gateway.forwarding import Upstream, UpstreamUnavailable
from reconciler.gateway.limits import FAILED_AUTH, Limiter, Verdict, partner_policy
from reconciler.gateway.routes import Route, RouteTable
from reconciler.gateway.selfservice import PREFIX as SELF_PREFIX
from reconciler.gateway.selfservice import SelfService, SelfServiceError
from reconciler.gateway.tokens import AccessToken, TokenAuthority, TokenError
from reconciler.gateway.usage import FLUSH_SECONDS, UsageCounter
from reconciler.manifests.models import client_authentication_of
from reconciler.stores import Stores
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Event
from reconciler.webhooks.events import EventError, ServiceToken, platform_token_valid, publish

__all__ = ["INTROSPECTION_TOKEN", "Gateway"]

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
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
DIRECTORY_CACHE = 10_000  # partners (and client ids that name none) remembered between changes
# RFC 8414 metadata: what the token endpoint accepts.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
AUTH_SIGNING_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
# The platform services' bearer token for POST /oauth2/introspect (``partnerctl gateway introspection-token``).
INTROSPECTION_TOKEN = ServiceToken("scp_it_", "gateway-introspection-token-key", "gateway-introspection-token-hash")


@dataclass(frozen=True)
class Caller:
    """Who is calling, as of now: the token's identity with the partner's current approved scopes."""

    token: AccessToken
    partner: str
    scopes: frozenset[str]
    record: PartnerRecord


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
        self.scopes: list[str] = []  # the catalog's scope names
        self._routes_loaded = False
        self._revocations_version: str | None = None
        self._revoked: dict[str, float] = {}  # jti -> expires_at

    def refresh(self) -> None:
        state_version, secrets_version = self.stores.partners.version(), self.stores.secrets.version()
        state_moved = state_version != self._state_version or state_version is None
        if state_moved or not self._routes_loaded:
            self._state_version = state_version
            self._records.clear()
            catalog = self.stores.journal.setting("catalog")
            self.routes = RouteTable(catalog)
            self.scopes = [scope["name"] for scope in (catalog or {}).get("spec", {}).get("scopes", [])]
            self._routes_loaded = True
        if state_moved and state_version is not None:
            # A revocation is recorded with the partner's record: a store announcing record changes
            # (PostgreSQL's NOTIFY) makes credentials cached here or in a remote secret store stale too.
            self.stores.secrets.forget()
            self._credentials.clear()
        if secrets_version != self._secrets_version or secrets_version is None:
            self._secrets_version = secrets_version
            self._credentials.clear()
        revocations = self.stores.journal.revocations_version()
        if revocations != self._revocations_version or revocations is None:
            self._revocations_version = revocations
            self._revoked = self.stores.journal.revoked_tokens(clock.now().timestamp())

    def revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def note_revoked(self, jti: str, expires_at: float) -> None:
        """A revocation made here counts at once, before the store's announcement comes back."""
        self._revoked = {**self._revoked, jti: expires_at}

    def partner(self, key: str) -> tuple[PartnerRecord | None, list[Credential]]:
        if len(self._records) > DIRECTORY_CACHE or len(self._credentials) > DIRECTORY_CACHE:
            self._records.clear()  # client ids that name no partner must not fill memory
            self._credentials.clear()
        if key not in self._records:
            self._records[key] = self.stores.partners.partner(key)
        if key not in self._credentials:
            self._credentials[key] = [c for c in self.stores.secrets.credentials(key) if c.live]
        return self._records[key], self._credentials[key]


class Gateway:
    """``rate_limits=False`` switches every limit off (a baseline for benchmarks, or limits enforced in front);
    ``count_usage=False`` counts no scope use (a baseline for benchmarks); counts are written every
    ``usage_flush_seconds`` (0: on every request) and at :meth:`close`."""

    def __init__(
        self,
        stores: Stores,
        *,
        issuer: str,
        upstream: Upstream | None = None,
        rate_limits: bool = True,
        keys: KeySource | None = None,
        count_usage: bool = True,
        usage_flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.stores = stores
        self.keys: KeySource = keys or InlineKeys()  # private_key_jwt keys; the CLI's KeyCache also fetches jwksUri
        self.directory = Directory(stores)
        self.tokens = TokenAuthority(stores.secrets, issuer=issuer)
        self.journal = Journal(stores, actor="gateway")
        self.upstream = upstream
        self.limiter = Limiter(stores.journal) if rate_limits else None
        self.self_service = SelfService(stores, self.limiter)
        self.usage: UsageCounter | None = (
            UsageCounter(stores.journal, flush_seconds=usage_flush_seconds) if count_usage else None
        )
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
            if path in OAUTH_ENDPOINTS:
                if method != "POST":
                    raise Refusal(405, {"error": "invalid_request", "error_description": "use POST"})
                await getattr(self, OAUTH_ENDPOINTS[path])(scope, receive, send)
            elif path == "/.well-known/oauth-authorization-server" and method == "GET":
                await _respond(send, 200, await self._off_loop(self._metadata), {"cache-control": "public, max-age=60"})
            elif path == "/.well-known/jwks.json" and method == "GET":
                await _respond(send, 200, self.tokens.jwks(), {"cache-control": "public, max-age=300"})
            elif path == "/healthz":
                await _respond(send, 200, {"status": "ok"})
            elif path == "/v1/ping" and method == "GET":
                authorization = _header(scope, b"authorization")
                caller, limit = await self._off_loop(lambda: self._identify(authorization))
                await self._off_loop(lambda: self._record_handshake(caller))
                pong = {"pong": True, "partner": caller.partner, "client_id": caller.token.client_id,
                        "scopes": sorted(caller.scopes)}  # fmt: skip
                await _respond(send, 200, pong, limit)
            elif path == "/authz":
                await self._authz(scope, send)
            elif path == "/internal/events" and method == "POST":
                await self._publish(scope, receive, send)
            elif path == SELF_PREFIX or path.startswith(SELF_PREFIX + "/"):
                await self._self_service(scope, receive, send)
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

    # --- OAuth2 endpoints: token, revocation, introspection, metadata ---------------------------------

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        field, basic = await _form(scope, receive)
        credential, record, limit = await self._off_loop(lambda: self._client_request(field, basic))
        headers = {**NO_STORE, **limit}
        grant = field.get("grant_type")
        if not grant:
            raise Refusal(400, {"error": "invalid_request", "error_description": "grant_type is required"}, headers)
        if grant != "client_credentials":
            raise Refusal(400, {"error": "unsupported_grant_type"}, headers)
        approved = record.scopes
        requested = field.get("scope")
        scopes = approved
        if requested is not None:
            wanted = requested.split()
            if not wanted or not set(wanted) <= set(approved):
                raise Refusal(400, {"error": "invalid_scope",
                                    "error_description": "ask for approved scopes only"}, headers)  # fmt: skip
            scopes = [scope for scope in approved if scope in wanted]
        client_id = credential.client_id if credential is not None else client_id_for(record.key)
        generation = credential.generation if credential is not None else 0
        token = self.tokens.issue(client_id=client_id, partner=record.key, scopes=scopes, generation=generation,
                                  now=clock.now())  # fmt: skip
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.tokens.lifetime,
                  "scope": " ".join(scopes)}  # fmt: skip
        await _respond(send, 200, answer, headers)

    async def _revoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        """RFC 7009: the caller's own access token stops working at every replica; 200 also for an unknown,
        expired or foreign token (a foreign one is not revoked)."""
        field, basic = await _form(scope, receive)

        def revoke() -> dict[str, str]:
            credential, record, limit = self._client_request(field, basic)
            token = field.get("token")
            if not token:
                raise Refusal(400, {"error": "invalid_request", "error_description": "token is required"},
                              {**NO_STORE, **limit})  # fmt: skip
            client_id = credential.client_id if credential is not None else client_id_for(record.key)
            self._revoke_token(token, client_id=client_id, partner=record.key)
            return limit

        limit = await self._off_loop(revoke)
        await _respond(send, 200, {}, {**NO_STORE, **limit})

    def _revoke_token(self, token: str, *, client_id: str, partner: str) -> None:
        try:
            access = self.tokens.verify(token, now=clock.now())
        except TokenError:
            return  # not ours, tampered with or expired: nothing to revoke (RFC 7009 §2.2)
        if access.client_id != client_id:
            return  # another client's token: not revoked, and the answer does not say so
        newly = self.stores.journal.revoke_token(access.jti, float(access.expires_at))
        self.directory.note_revoked(access.jti, float(access.expires_at))
        if newly:
            details = {"clientId": client_id, "jti": access.jti}
            with self.journal.exclusive():
                self.journal.record([], [self.journal.event(Event.TOKEN_REVOKED, partner, details)], now=clock.now())

    async def _introspect(self, scope: Scope, receive: Receive, send: Send) -> None:
        """RFC 7662, for the platform's services (the introspection token as a Bearer token) or for a partner
        about its own tokens (client authentication)."""
        field, basic = await _form(scope, receive)
        authorization = _header(scope, b"authorization") or ""
        bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None

        def introspect() -> tuple[dict[str, Any], dict[str, str]]:
            owner: str | None = None
            limit: dict[str, str] = {}
            if bearer is not None:
                if not INTROSPECTION_TOKEN.valid(self.stores.secrets, bearer):
                    raise Refusal(401, {"error": "invalid_token"},
                                  {**NO_STORE, "www-authenticate": f'Bearer realm="{REALM}-platform"'})  # fmt: skip
                self.directory.refresh()
            else:
                credential, record, limit = self._client_request(field, basic)
                owner = credential.client_id if credential is not None else client_id_for(record.key)
            token = field.get("token")
            if not token:
                raise Refusal(400, {"error": "invalid_request", "error_description": "token is required"},
                              {**NO_STORE, **limit})  # fmt: skip
            return self._introspection(token, owner), limit

        answer, limit = await self._off_loop(introspect)
        await _respond(send, 200, answer, {**NO_STORE, **limit})

    def _introspection(self, token: str, owner: str | None) -> dict[str, Any]:
        """What RFC 7662 says of ``token`` (directory refreshed): inactive unless it is ours, unexpired, not
        revoked, of a live credential and usable partner, and (``owner``) the asking client's own."""
        inactive = {"active": False}
        try:
            access = self.tokens.verify(token, now=clock.now())
        except TokenError:
            return inactive
        if owner is not None and access.client_id != owner:
            return inactive
        record, credentials = self.directory.partner(access.partner)
        if record is None or not self._live(access, record, credentials):
            return inactive
        return {"active": True, "client_id": access.client_id, "sub": access.client_id,
                "scope": " ".join(scope for scope in access.scopes if scope in record.scopes),
                "exp": access.expires_at, "iat": access.issued_at, "iss": self.tokens.issuer,
                "token_type": "Bearer"}  # fmt: skip

    def _metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata (in a store thread: the scopes are the applied catalog's)."""
        self.directory.refresh()
        base = self.tokens.issuer.rstrip("/")
        return {
            "issuer": self.tokens.issuer,
            "token_endpoint": f"{base}/oauth2/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "introspection_endpoint": f"{base}/oauth2/introspect",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGORITHMS,
            "scopes_supported": list(self.directory.scopes),
        }

    # --- client authentication and rate limits (in store threads) -----------------------------------

    def _client_request(
        self, field: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[Credential | None, PartnerRecord, dict[str, str]]:
        """A client-authenticated request: the client (:meth:`_client`), charged to its partner's rate limit;
        with the RateLimit fields its answer carries."""
        self.directory.refresh()
        credential, record = self._client(field, basic)
        return credential, record, self._charge(record)

    def _client(self, field: dict[str, str], basic: tuple[str, str] | None) -> tuple[Credential | None, PartnerRecord]:
        """Client authentication (RFC 6749 §2.3) of the token, revocation and introspection endpoints, the
        directory refreshed: the client's live credential (None for a method that has none, such as
        private_key_jwt) and its usable partner.

        Refused with 400 ``invalid_request`` (two methods at once) or 401 ``invalid_client``; each refusal
        spends a token of the client id's failed-authentication bucket, and while that bucket is empty
        every attempt is answered 429 before anything presented is checked. A new method plugs in here,
        after the bucket's check, raising ``self._failed(client_id, refusal)`` when it refuses."""
        if "client_assertion" in field or "client_assertion_type" in field:
            return self._assertion_client(field, basic)
        claimed = basic[0] if basic is not None else field.get("client_id")
        self._failures_allow(claimed)
        challenge = {"www-authenticate": f'Basic realm="{REALM}"'} if basic is not None else {}
        if basic is not None and ("client_secret" in field or "client_id" in field):
            raise self._failed(claimed, Refusal(400, {"error": "invalid_request",
                                                      "error_description": "use one client authentication method"},
                                                NO_STORE))  # fmt: skip
        client_id, secret = basic if basic is not None else (field.get("client_id"), field.get("client_secret"))
        found = self._authenticate(client_id, secret)
        if found is None:
            raise self._failed(claimed, Refusal(401, {"error": "invalid_client"}, {**NO_STORE, **challenge}))
        return found

    def _authenticate(self, client_id: str | None, secret: str | None) -> tuple[Credential, PartnerRecord] | None:
        """The live credential and usable partner these client credentials belong to (in a store thread).
        A partner that authenticates with private_key_jwt never does with a secret."""
        if not client_id or not secret:
            return None
        credential = self.stores.secrets.verify(client_id, secret)
        record = self.directory.partner(credential.partner)[0] if credential else None
        if credential is None or record is None or not record.usable:
            return None
        if client_authentication_of(record.spec) != "client_secret":
            return None
        return credential, record

    def _assertion_client(
        self, field: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[Credential | None, PartnerRecord]:
        """private_key_jwt (RFC 7523 §2.2): the client proves itself with a JWT signed by its own key.

        The client id is the form's ``client_id`` or, without one, the assertion's ``iss`` (= ``sub``); the
        assertion is then checked against that partner's applied keys (DESIGN §7). Every refusal is
        ``invalid_client`` and spends the client id's failed-authentication bucket; the reason is logged,
        never the assertion."""
        assertion = field.get("client_assertion", "")
        try:
            named = unverified_client_id(assertion) if assertion else None
        except AssertionRefused:
            named = None
        claimed = field.get("client_id") or named
        self._failures_allow(claimed)
        refused = Refusal(401, {"error": "invalid_client"}, dict(NO_STORE))
        if basic is not None or "client_secret" in field:
            raise self._failed(claimed, Refusal(400, {"error": "invalid_request",
                                                      "error_description": "use one client authentication method"},
                                                NO_STORE))  # fmt: skip
        if field.get("client_assertion_type") != ASSERTION_TYPE or not assertion or not claimed:
            raise self._failed(claimed, refused)
        if named is not None and named != claimed:
            raise self._failed(claimed, refused)
        record = self.directory.partner(partner_of_client(claimed))[0]
        if record is None or not record.usable or client_id_for(record.key) != claimed:
            raise self._failed(claimed, refused)
        if client_authentication_of(record.spec) != "private_key_jwt":
            raise self._failed(claimed, refused)  # a secret-based partner never authenticates with a key
        base = self.tokens.issuer.rstrip("/")
        now = clock.now()
        try:
            verified = authenticate(
                assertion, client_id=claimed, auth=record.spec.get("auth", {}), keys=self.keys,
                audiences={f"{base}/oauth2/token", self.tokens.issuer}, now=now,
                seen_before=lambda key, expires_at: not self.stores.journal.remember_once(key, expires_at),
            )  # fmt: skip
        except AssertionRefused as refusal:
            log.info("client assertion of %s refused: %s", claimed, refusal.reason)
            raise self._failed(claimed, refused) from refusal
        if verified.key_id is not None and verified.key_id not in record.keys_first_seen:
            self._note_key(record.key, verified.key_id)
        return None, record

    def _note_key(self, partner: str, kid: str) -> None:
        """When a jwksUri key was first seen, for status and the report (DESIGN §6)."""
        now = clock.now()
        with self.journal.exclusive():
            record = self.stores.partners.partner(partner)
            if record is not None and note_key_seen(record, kid, now):
                self.journal.record([record], [], now=now)

    def _failure_key(self, client_id: str | None) -> str | None:
        """The failed-authentication bucket of a client id that names a partner; None for any other (there is
        no secret to guess, and such ids must not fill the store)."""
        if self.limiter is None or not client_id:
            return None
        record, _ = self.directory.partner(partner_of_client(client_id))
        return f"failed-auth|{client_id}" if record is not None else None

    def _failures_allow(self, client_id: str | None) -> None:
        """429 while the client id's failed-authentication bucket is empty."""
        key = self._failure_key(client_id)
        if key is None:
            return
        assert self.limiter is not None
        verdict = self.limiter.check(key, FAILED_AUTH)
        if not verdict.allowed:
            raise _limited(verdict, "too many failed client authentications for this client id")

    def _failed(self, client_id: str | None, refusal: Refusal) -> Refusal:
        """A failed client authentication: spend a token of the client id's bucket; ``refusal`` with the
        RateLimit fields, or 429 when the bucket had none left."""
        key = self._failure_key(client_id)
        if self.limiter is None:
            return refusal
        verdict = (self.limiter.spend(key, FAILED_AUTH) if key is not None
                   else Verdict(True, FAILED_AUTH, FAILED_AUTH.burst, 0))  # fmt: skip
        if not verdict.allowed:
            return _limited(verdict, "too many failed client authentications for this client id")
        refusal.headers = {**refusal.headers, **verdict.headers()}
        return refusal

    def _charge(self, record: PartnerRecord) -> dict[str, str]:
        """One request of the partner's: the RateLimit fields of its answer, or 429."""
        if self.limiter is None:
            return {}
        verdict = self.limiter.take(f"partner|{record.key}", partner_policy(record))
        if not verdict.allowed:
            raise _limited(verdict, "the partner's rate limit is exhausted")
        return verdict.headers()

    # --- bearer tokens and routes ---------------------------------------------------------------

    def _identify(self, authorization: str | None) -> tuple[Caller, dict[str, str]]:
        """The caller of a bearer token, against the stores as they are now, charged to its partner's rate
        limit (in a store thread); with the RateLimit fields of its answer."""
        self.directory.refresh()
        caller = self._caller(authorization)
        return caller, self._charge(caller.record)

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
        if record is None or not self._live(token, record, credentials):
            raise Refusal(401, {"error": "invalid_token", "error_description": "token no longer valid"}, invalid)
        return Caller(token, token.partner, frozenset(token.scopes) & frozenset(record.scopes), record)

    def _live(self, token: AccessToken, record: PartnerRecord, credentials: list[Credential]) -> bool:
        """Whether a verified, unexpired access token still stands (directory refreshed): not revoked, its
        partner usable, and the credential generation it was issued to still live (a rotated-out secret's
        tokens stop with it). A method without a credential (private_key_jwt) decides here what is live."""
        if self.directory.revoked(token.jti) or not record.usable:
            return False
        if client_authentication_of(record.spec) == "private_key_jwt":
            # No secret, no generation: its tokens (generation 0) stand while the method does; a switch to
            # a secret ends them, as a switch away from one ends the secret's tokens.
            return token.generation == 0 and token.client_id == client_id_for(record.key)
        return any(c.generation == token.generation and c.client_id == token.client_id for c in credentials)

    def _decide(self, method: str, path: str, authorization: str | None) -> tuple[Caller, Route, dict[str, str]]:
        """Whether this request may pass (in a store thread): a catalog route, a valid token, the partner's
        rate limit, the route's scope; with the RateLimit fields of its answer. One that passes counts a use
        of the route's scope."""
        self.directory.refresh()
        route = self.directory.routes.match(method, path)
        if route is None:
            raise Refusal(404, {"error": "not_found", "error_description": f"{method} {path} is not a platform route"})
        caller = self._caller(authorization)
        limit = self._charge(caller.record)
        if route.scope not in caller.scopes:
            challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{route.scope}"'
            raise Refusal(403, {"error": "insufficient_scope", "scope": route.scope},
                          {"www-authenticate": challenge, **limit},
                          denial=(caller, method, path, route.scope))  # fmt: skip
        if self.usage is not None:
            self.usage.count(caller.partner, route.scope, clock.now())
        return caller, route, limit

    async def _authz(self, scope: Scope, send: Send) -> None:
        method = (_header(scope, b"x-original-method") or "GET").upper()
        uri = _header(scope, b"x-original-uri") or "/"
        authorization = _header(scope, b"authorization")
        caller, _, limit = await self._off_loop(lambda: self._decide(method, uri.split("?", 1)[0], authorization))
        await self._note_sync(caller)
        await _respond(send, 200, {"allowed": True}, {**_identity(caller), **limit})

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path, authorization = scope["method"], scope["path"], _header(scope, b"authorization")
        caller, _, limit = await self._off_loop(lambda: self._decide(method, path, authorization))
        if self.upstream is None:
            raise Refusal(502, {"error": "no_upstream", "error_description": "the gateway has no --upstream"}, limit)
        headers = [(name, value) for name, value in scope["headers"]
                   if name.lower() not in _HOP_BY_HOP and name.lower() not in _IDENTITY_HEADERS]  # fmt: skip
        headers += [(name.encode(), value.encode()) for name, value in _identity(caller).items()]
        query = scope.get("query_string", b"").decode()
        try:
            answer = await self.upstream.forward(method, path, query, headers, await _body(receive))
        except UpstreamUnavailable as error:
            raise Refusal(502, {"error": "upstream_unavailable"}, limit) from error
        await self._note_sync(caller)
        passed = [(k.encode(), v.encode()) for k, v in answer.headers if k.encode() not in _HOP_BY_HOP]
        passed += [(name.encode(), value.encode()) for name, value in limit.items()]
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

    async def _self_service(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The partner's own status, delivery log and replays (:mod:`reconciler.gateway.selfservice`)."""
        method, path, authorization = scope["method"], scope["path"], _header(scope, b"authorization")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        body = await _body(receive) if method == "POST" else b""

        def answer() -> tuple[int, dict[str, Any], dict[str, str]]:
            caller, limit = self._identify(authorization)
            try:
                status, document, headers = self.self_service.handle(method, path, query, body, caller.record,
                                                                     caller.token.client_id)  # fmt: skip
            except SelfServiceError as error:
                refused = {"error": error.error, "error_description": error.description}
                raise Refusal(error.status, refused, {**NO_STORE, **_both(limit, error.headers)}) from error
            return status, document, {**NO_STORE, **_both(limit, headers)}

        await _respond(send, *(await self._off_loop(answer)))

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
        """Stop the store threads and write the scope uses counted since the last flush (the stores stay open)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self.usage is not None:
            self.usage.close()


OAUTH_ENDPOINTS = {"/oauth2/token": "_token", "/oauth2/revoke": "_revoke", "/oauth2/introspect": "_introspect"}


def _both(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    """Two answers' header fields together; a field both have lists both values (two RateLimit policies)."""
    return {**first, **second, **{name: f"{first[name]}, {second[name]}" for name in first.keys() & second.keys()}}


def _limited(verdict: Verdict, description: str) -> Refusal:
    return Refusal(429, {"error": "rate_limited", "error_description": description}, {**NO_STORE, **verdict.headers()})


async def _form(scope: Scope, receive: Receive) -> tuple[dict[str, str], tuple[str, str] | None]:
    """An OAuth2 endpoint's form parameters (each at most once, RFC 6749 §3.2) and its HTTP Basic credentials."""
    form = parse_qs((await _body(receive)).decode("utf-8", "replace"), keep_blank_values=True)
    if any(len(values) > 1 for values in form.values()):
        raise Refusal(400, {"error": "invalid_request", "error_description": "repeated parameter"}, NO_STORE)
    return {name: values[0] for name, values in form.items()}, _basic_credentials(_header(scope, b"authorization"))


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
