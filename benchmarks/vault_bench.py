"""Token-endpoint requests per second with Vault-backed verification, as a ratio of the same gateway on
the embedded store (target: at least 0.8, thanks to the gateway's short verification cache).

Both gateways run side by side as ``partnerctl gateway serve`` processes, measured in interleaved
rounds by one client; Vault is OpenBao's dev server on loopback, and the Vault gateway logs in with
the documented gateway policy (deploy/vault/partnerctl-gateway-policy.hcl).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.gateway_bench import free_port, rate, wait_until_up
from benchmarks.generate import commit_all, generate_repository
from tests.support.vault import VaultSpace, start_dev_server

ROUNDS = 3


def credentials(command: list[str], env: dict[str, str], partner: str, *, vault: bool) -> dict[str, str]:
    run = subprocess.run([*command, "-o", "json", "credentials", "deliver", partner], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    delivered = json.loads(run.stdout)
    if vault:
        unwrapped = subprocess.run([*command, "-o", "json", "credentials", "unwrap", delivered["wrap_token"]],
                                   env=env, check=True, capture_output=True, text=True)  # fmt: skip
        delivered = json.loads(unwrapped.stdout)
    return dict(delivered)


def main() -> dict[str, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        server = start_dev_server(Path(folder) / "bao")
        servers: list[subprocess.Popen[bytes]] = []
        try:
            server.prepare()
            space = VaultSpace(server, "scp-partners", server.token("partnerctl"))  # the policies' own prefix
            root = Path(folder) / "repo"
            generate_repository(root, 2)
            commit_all(root)
            base = {**os.environ, "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
            base.pop("PARTNERCTL_NOW", None)
            embedded_env = {**base, "PARTNERCTL_HOME": str(Path(folder) / "embedded")}
            vault_env = {**base, "PARTNERCTL_HOME": str(Path(folder) / "vault"), "PARTNERCTL_SECRETS": space.url,
                         "VAULT_TOKEN": space.token}  # fmt: skip
            command = [partnerctl, "--repo", str(root), "--approval", "none"]
            partner = "ministry-social-affairs/partner-00000"
            picked = {}
            for name, env in (("embedded", embedded_env), ("vault", vault_env)):
                subprocess.run([*command, "apply"], env=env, check=True, capture_output=True)
                picked[name] = credentials(command, env, partner, vault=name == "vault")
            ports = {"embedded": free_port(), "vault": free_port()}
            gateway_env = {**vault_env, "VAULT_TOKEN": server.token("partnerctl-gateway")}
            for name, env in (("embedded", embedded_env), ("vault", gateway_env)):
                servers.append(subprocess.Popen([partnerctl, "gateway", "serve", "--port", str(ports[name])],
                                                env=env, stderr=subprocess.PIPE))  # fmt: skip
            for port, process in zip(ports.values(), servers, strict=True):
                try:
                    wait_until_up(f"http://127.0.0.1:{port}/healthz")
                except RuntimeError:
                    process.terminate()
                    raise RuntimeError(f"gateway failed: {process.communicate()[1].decode()[-2000:]}") from None
            rates: dict[str, list[float]] = {"embedded": [], "vault": []}
            with httpx.Client() as client:
                requests = {}
                for name, port in ports.items():
                    secret = f"{picked[name]['client_id']}:{picked[name]['client_secret']}"
                    headers = {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}
                    url, form = f"http://127.0.0.1:{port}/oauth2/token", {"grant_type": "client_credentials"}
                    requests[name] = client.build_request("POST", url, data=form, headers=headers)
                for _ in range(ROUNDS):  # interleaved, best of each
                    for name in ("embedded", "vault"):
                        rates[name].append(rate(client, requests[name]))
        finally:
            for process in servers:
                process.terminate()
                process.wait(timeout=10)
            server.stop()
    ratio = max(rates["vault"]) / max(rates["embedded"])
    print(f"token endpoint with Vault verification: {max(rates['vault']):.0f} req/s = {ratio:.2f}x the embedded store "
          f"(target >= 0.8; OpenBao dev server on loopback, 5 s verification cache)")  # fmt: skip
    return {"vault_token_ratio": ratio}


if __name__ == "__main__":
    main()
