"""``partnerctl run`` and ``partnerctl gateway serve`` as real processes, and waiting for what they do
(leader election, several gateway replicas on one store)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.engine import Installation
from tests.support.servers import free_port

LEASE_SECONDS = 2
PARTNERCTL = str(Path(sys.executable).parent / "partnerctl")


class Runner:
    """A ``partnerctl run --leader-elect`` process and the JSON log lines it has written so far."""

    def __init__(self, installation: Installation, identity: str) -> None:
        command = [str(Path(sys.executable).parent / "partnerctl"), "--repo", str(installation.repo.root),
                   "--home", str(installation.home), "--approval", "none", *installation.extra, "run",
                   "--leader-elect", "--lease-duration", str(LEASE_SECONDS), "--interval", "1",
                   "--log-format", "json"]  # fmt: skip
        self.identity = identity
        self.process = subprocess.Popen(command, env={**os.environ, "POD_NAME": identity}, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        self.lines: list[dict[str, object]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def said(self, fragment: str) -> bool:
        return any(fragment in str(line.get("msg")) for line in list(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Wait for ``condition``; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class GatewayProcess:
    """``partnerctl gateway serve`` on a free port, over the installation's --home and --state, on the real
    clock (a replica as deployed); ``options`` are more options of ``serve``."""

    def __init__(self, installation: Installation, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [PARTNERCTL, "--home", str(installation.home), *installation.extra, "gateway", "serve",
                   "--port", str(self.port), *options]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "PARTNERCTL_NOW": ""})  # fmt: skip
        eventually(self._up, "the gateway to start")

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
