"""``partnerctl gateway serve`` and ``partnerctl gateway introspection-token``."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli import output, wiring
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
@click.option("--no-rate-limits", is_flag=True,
              help="Enforce no rate limit (when a gateway in front enforces them, or as a benchmark's baseline).")
@click.option("--no-usage-counting", is_flag=True,
              help="Count no scope use (status then shows no last use; a benchmark's baseline).")
@common_options
@click.pass_context
def serve(
    ctx: click.Context, /, host: str, port: int, upstream: str | None, issuer: str | None, no_rate_limits: bool,
    no_usage_counting: bool, **given: Any,
) -> None:  # fmt: skip
    """Serve the gateway on uvicorn, sharing --home and the stores with the reconciler.

    Rate limits (the tenant policy's gateway section) are shared with every other gateway on the same
    state store; --no-rate-limits switches them off. Each scope's uses per partner and day, and its last
    use, are counted in memory and written to the state store every few seconds and at shutdown (counters,
    never a request log); --no-usage-counting switches that off.

    \b
    Example:
      partnerctl gateway serve --port 8080 --upstream http://platform-api.internal:8000
    """
    import uvicorn

    settings = settings_from(ctx, given)
    wiring.check_listen_address(host, port, "--host")
    app = wiring.gateway(settings, issuer=issuer or f"http://{host}:{port}", upstream=upstream,
                         rate_limits=not no_rate_limits, count_usage=not no_usage_counting)  # fmt: skip
    limits = " without rate limits" if no_rate_limits else ""
    limits += " without usage counting" if no_usage_counting else ""
    click.echo(f"partnerctl gateway on http://{host}:{port} (issuer {app.tokens.issuer}){limits}", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    except SystemExit as stop:  # uvicorn's way of saying it could not start (it logged why)
        if stop.code not in (0, None):
            raise UsageError(f"the gateway could not listen on {host}:{port} (see above)") from stop
    finally:
        app.close()
        app.stores.close()


@gateway.command(name="introspection-token")
@common_options
@click.pass_context
def introspection_token(ctx: click.Context, /, **given: Any) -> None:
    """Issue (or replace) the platform services' bearer token for POST /oauth2/introspect. Shown once.

    Only its keyed hash is kept (in the secret store); issuing a new one stops the previous one at once.

    \b
    Example:
      partnerctl gateway introspection-token > /run/secrets/introspection-token
    """
    settings = settings_from(ctx, given)
    from reconciler.gateway.app import INTROSPECTION_TOKEN

    with wiring.stores(settings) as stores:
        token = INTROSPECTION_TOKEN.issue(stores.secrets)
    if settings.output == "json":
        output.emit_json({"token": token})
    else:
        click.echo(token)
