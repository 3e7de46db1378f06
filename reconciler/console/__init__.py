"""The console (DESIGN §13): partners at a glance for Tenant Admins, in the browser.

    app.py      the ASGI app: routing, sign-in, pages or JSON, security headers
    viewers.py  who is looking (the proxy's X-Forwarded-Email from a trusted address) and which tenants they see
    views.py    what each page shows, as data, read from the stores
    chart.py    the 14-day delivery chart as inline SVG
    templates/  Jinja2 templates (autoescaped); static/console.css, the only asset
"""

from __future__ import annotations

from reconciler.console.app import Console

__all__ = ["Console"]
