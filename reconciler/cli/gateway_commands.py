"""``partnerctl gateway serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.backends import open_secrets, open_state
from reconciler.cli.options import common_options, settings_from
from reconciler.gateway.app import Gateway, issuer_for

# A remote secret store (Vault) may answer repeated verifications from memory for this long; so a
# revocation reaches the gateway within it. The embedded store is always read directly.
SECRET_CACHE_SECONDS = 5.0
# A remote state store (Kubernetes) is asked whether records changed at most this often, so the
# gateway's request rate never reaches the API server; a suspension or narrowing applies within it.
STATE_CACHE_SECONDS = 2.0


@click.group()
def gateway() -> None:
    """The partner gateway: OAuth2 tokens, the handshake, scope enforcement."""


@gateway.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--upstream", help="Platform API that allowed requests are forwarded to.")
@click.option("--issuer", help="Token issuer URL (default: http://HOST:PORT).")
@common_options
@click.pass_context
def serve(ctx: click.Context, /, host: str, port: int, upstream: str | None, issuer: str | None, **given: Any) -> None:
    """Serve the gateway on uvicorn, sharing --home and the stores with the reconciler.

    \b
    Example:
      partnerctl gateway serve --port 8080 --upstream http://platform-api.internal:8000
    """
    import uvicorn

    settings = settings_from(ctx, given)
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    app = Gateway(
        state=open_state(settings.state, home=home, cache_seconds=STATE_CACHE_SECONDS),
        secrets=open_secrets(settings.secrets, home=home, cache_seconds=SECRET_CACHE_SECONDS),
        home=home,
        issuer=issuer or issuer_for(host, port),
        upstream=upstream,
    )
    click.echo(f"partnerctl gateway on http://{host}:{port} (issuer {app.tokens.issuer})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
