"""A real browser for the console's tests: Debian's headless Chromium, driven by Playwright for Python.

Playwright starts ``/usr/bin/chromium`` (Debian's ``chromium`` package, which ``make test`` installs when it
runs as root) and never downloads a browser. Every launch gets a new, empty profile: Playwright creates a
temporary ``--user-data-dir`` for it and removes it when the browser closes. Without the binary the tests
that need it are skipped and say so.

While Playwright's sync API runs, it marks this thread's asyncio loop as running (its driver's loop runs in
a greenlet of this thread), so ``asyncio.run`` refuses here: run such code with :func:`in_a_thread`. For the
same reason the browser lives for one test module, not for the session.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium runs only without its sandbox; without the background-networking flags it keeps calling
# Google's services, whose connections a closed network refuses.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

T = TypeVar("T")


def missing() -> str | None:
    """Why there is no browser here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return (f"{CHROMIUM} is missing: install Debian's chromium package "
                "(make test does it when run as root with apt-get)")  # fmt: skip
    return None


@contextmanager
def launched() -> Iterator[Browser]:
    """Headless Chromium with a fresh profile, closed (and its profile removed) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(FLAGS),
                                             chromium_sandbox=False)  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


class Pages:
    """Browser contexts opened for one test (each with its own cookies, headers and JavaScript setting),
    all closed after it."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    def context(self, *, headers: dict[str, str] | None = None, javascript: bool = True,
                **options: Any) -> BrowserContext:  # fmt: skip
        """A new context: ``headers`` are sent with every request (e.g. what a reverse proxy would add),
        ``javascript`` False for a browser with JavaScript switched off."""
        context = self.browser.new_context(extra_http_headers=headers, java_script_enabled=javascript, **options)
        self.contexts.append(context)
        return context

    def page(self, *, headers: dict[str, str] | None = None, javascript: bool = True, **options: Any) -> Page:
        """A new page in a context of its own."""
        return self.context(headers=headers, javascript=javascript, **options).new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


def screenshot(page: Page, name: str) -> Path:
    """Saves the whole page as ``test-artifacts/screenshots/<name>.png`` in the checkout and returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
    page.screenshot(path=path, full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG"), path
    return path


def in_a_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` run in a thread of its own: the way to call ``asyncio.run`` (e.g. a
    dispatcher's ``run_once``) while the browser is open."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function(*args, **kwargs))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
