"""One writer at a time per embedded installation: an advisory ``flock`` on ``<home>/lock``."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import Busy, Stalled

__all__ = ["installation_lock"]


@contextmanager
def installation_lock(home: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold ``home``'s writer lock; wait at most ``timeout`` seconds (None: as long as it takes)."""
    try:
        descriptor = os.open(home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise Stalled(f"cannot open the lock file in {home}: {error.strerror}") from error
    try:
        if timeout is None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as error:
                    if time.monotonic() > deadline:
                        raise Busy(f"another partnerctl is writing in {home}; try again when it is done") from error
                    time.sleep(0.1)
        yield
    finally:
        os.close(descriptor)
