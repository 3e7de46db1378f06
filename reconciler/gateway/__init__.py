"""The partner gateway (DESIGN §7): OAuth2 client credentials, the handshake, scope enforcement, revocation,
introspection, metadata and rate limits.

    app.py         the ASGI application: token, revocation, introspection and metadata endpoints, API routes
    limits.py      rate limits: token buckets shared through the state store, leased a few at a time
    tokens.py      RFC 9068 access tokens, signed with the installation's ES256 key
    routes.py      which scope a request needs (the catalog's routes)
    forwarding.py  what the gateway asks of the platform API; upstream.py forwards over HTTP (httpx)
    assertions.py  private_key_jwt client assertions (RFC 7523) checked against a partner's JWKS, no I/O
    selfservice.py the partner's own status, delivery log and replays (GET /v1/self, …)
    keys.py        partners' public keys: the manifest's jwks, or its jwksUri fetched (httpx, SSRF) and cached
"""

from __future__ import annotations

from reconciler.gateway.app import Gateway

__all__ = ["Gateway"]
