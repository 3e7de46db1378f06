"""Reading pages back: what an HTML page would load from elsewhere."""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["References"]


class References(HTMLParser):
    """Every tag and every attribute that could load something from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.loading: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.loading += [(name, value or "") for name, value in attrs if name in ("src", "href", "srcset", "action")]
