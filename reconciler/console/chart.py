"""The partner page's delivery chart: daily delivered and failed attempts as an inline SVG drawn on the server."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["delivery_chart"]

WIDTH, HEIGHT, AXIS = 560, 140, 18
DELIVERED, FAILED = "#2e7d32", "#c62828"


def delivery_chart(days: list[dict[str, Any]], *, title: str) -> str:
    """Two bars a day (delivered, failed), scaled to the busiest day; every day labelled under its bars and
    each bar titled with its count, so the chart reads without colour and without JavaScript."""
    peak = max([1, *(day["delivered"] for day in days), *(day["failed"] for day in days)])
    slot = WIDTH / max(1, len(days))
    bar = max(2.0, slot / 2 - 3)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT + AXIS}" '
             f'width="{WIDTH}" height="{HEIGHT + AXIS}"><title>{escape(title)}</title>',
             f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#888" stroke-width="1"/>']  # fmt: skip
    for index, day in enumerate(days):
        x = index * slot + 2
        for offset, (kind, colour) in enumerate((("delivered", DELIVERED), ("failed", FAILED))):
            count = int(day[kind])
            height = round(count / peak * (HEIGHT - 4), 1)
            parts.append(f'<rect class="bar {kind}" x="{x + offset * (bar + 1):.1f}" y="{HEIGHT - height:.1f}" '
                         f'width="{bar:.1f}" height="{height:.1f}" fill="{colour}">'
                         f"<title>{escape(str(day['day']))}: {count} {kind}</title></rect>")  # fmt: skip
        label = escape(str(day["day"])[5:])
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT + 13}" font-size="9" fill="#444">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
