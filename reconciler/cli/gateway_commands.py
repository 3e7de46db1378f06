"""``partnerctl gateway serve``."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli import wiring
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import UsageError


@click.group()
def gateway() -> None:
    """The partner gateway: OAuth2 tokens, the handshake, scope enforcement."""


@gateway.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
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
    wiring.check_listen_address(host, port, "--host")
    app = wiring.gateway(settings, issuer=issuer or f"http://{host}:{port}", upstream=upstream)
    click.echo(f"partnerctl gateway on http://{host}:{port} (issuer {app.tokens.issuer})", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    except SystemExit as stop:  # uvicorn's way of saying it could not start (it logged why)
        if stop.code not in (0, None):
            raise UsageError(f"the gateway could not listen on {host}:{port} (see above)") from stop
    finally:
        app.close()
        app.stores.close()
