"""``partnerctl console serve``: the read-only web console (DESIGN §13) on uvicorn."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli import wiring
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import UsageError
from reconciler.manifests.urls import is_loopback_host

__all__ = ["console"]

DEFAULT_PORT = 8090


@click.group()
def console() -> None:
    """The read-only web console for Tenant Admins: partners at a glance, pending changes, the report."""


@console.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --trusted-proxy (sign-in).")  # fmt: skip
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
              help="The authenticating proxy's address(es): X-Forwarded-Email is believed only from these "
                   "(repeatable). Without it there is no sign-in and the console binds to loopback only.")  # fmt: skip
@common_options
@click.pass_context
def serve(ctx: click.Context, /, host: str, port: int, trusted_proxies: tuple[str, ...], **given: Any) -> None:
    """Serve the console, reading the stores the reconciler writes (--home, --state, --secrets).

    A viewer sees the tenants whose policy lists their email as an approver; --trust-root approvers see all.

    \b
    Examples:
      partnerctl console serve                                   # http://127.0.0.1:8090/, no sign-in
      partnerctl --trust-root /etc/partnerctl/trust-root.yaml console serve \\
          --host 0.0.0.0 --trusted-proxy 127.0.0.1/32            # behind oauth2-proxy in the same pod
    """
    import uvicorn

    settings = settings_from(ctx, given)
    if not trusted_proxies and not is_loopback_host(host):
        raise UsageError(f"--host {host}: without --trusted-proxy (an authenticating proxy) the console has no "
                         "sign-in, so it listens on loopback only (127.0.0.1 or ::1)")  # fmt: skip
    wiring.check_listen_address(host, port, "--host")
    app = wiring.console(settings, trusted_proxies=trusted_proxies)
    sign_in = f"sign-in by the proxy at {', '.join(trusted_proxies)}" if trusted_proxies else "no sign-in (loopback)"
    click.echo(f"partnerctl console on http://{host}:{port}/ ({sign_in})", err=True)
    try:
        # proxy_headers off: the peer address must be the connection's, never one a client claims (X-Forwarded-For)
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
                    proxy_headers=False)  # fmt: skip
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise UsageError(f"the console could not listen on {host}:{port} (see above)") from stop
    finally:
        app.close()

