"""One writer at a time per installation: apply, delivery, rotation, the gateway's and the dispatcher's
records all take the lock file ``<home>/lock`` (an advisory flock) around their writes."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import UsageError


@contextmanager
def installation_lock(home: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold ``home``'s writer lock; wait at most ``timeout`` seconds (None: as long as it takes)."""
    descriptor = os.open(home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UsageError(f"another partnerctl is applying in {home}; try again") from None
                    time.sleep(0.1)
        yield
    finally:
        os.close(descriptor)
