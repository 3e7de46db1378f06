"""The token endpoint's requests per second as a ratio of a bare ASGI handler on the same server
(uvicorn) and client (target: at least 0.5), the same endpoint with rate limiting on as a ratio of the
same gateway with ``--no-rate-limits`` (target: at least 0.9; the tenant policies' limits are the
highest the schema allows, so no request is refused), and the latency of the ping path (p50, p99).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.generate import commit_all, generate_repository

REQUESTS = 1500
ROUNDS = 7
PINGS = 500


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rate(client: httpx.Client, request: httpx.Request) -> float:
    start = time.perf_counter()
    for _ in range(REQUESTS):
        response = client.send(request)
        assert response.status_code == 200, response.text
    return REQUESTS / (time.perf_counter() - start)


PARTNER = "ministry-social-affairs/partner-00000"


def onboarded(folder: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Two generated partners applied into ``folder``/home on the real clock: the environment a gateway serves
    them with, and the first one's credentials, picked up."""
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    root, home = folder / "repo", folder / "home"
    generate_repository(root, 2)
    commit_all(root)
    env = {**os.environ, "PARTNERCTL_HOME": str(home), "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
    env.pop("PARTNERCTL_NOW", None)
    base = [partnerctl, "--repo", str(root), "--approval", "none"]
    subprocess.run([*base, "apply"], env=env, check=True, capture_output=True)
    pickup = json.loads(subprocess.run([*base, "-o", "json", "credentials", "deliver", PARTNER], env=env,
                                       check=True, capture_output=True, text=True).stdout)  # fmt: skip
    return env, pickup


def main() -> dict[str, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        env, pickup = onboarded(Path(folder))
        ports = {"gateway": free_port(), "unlimited": free_port(), "bare": free_port()}
        servers = [
            subprocess.Popen([partnerctl, "gateway", "serve", "--port", str(ports["gateway"])], env=env,
                             stderr=subprocess.DEVNULL),
            subprocess.Popen([partnerctl, "gateway", "serve", "--port", str(ports["unlimited"]), "--no-rate-limits"],
                             env=env, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "-m", "benchmarks.bare_app", str(ports["bare"])], env=env),
        ]  # fmt: skip
        try:
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            wait_until_up(f"{urls['gateway']}/healthz")
            wait_until_up(f"{urls['unlimited']}/healthz")
            wait_until_up(urls["bare"])
            form = {"grant_type": "client_credentials"}
            basic = base64.b64encode(f"{pickup['client_id']}:{pickup['client_secret']}".encode()).decode()
            headers = {"Authorization": f"Basic {basic}"}
            with httpx.Client() as client:
                requests = {name: client.build_request("POST", f"{url}/oauth2/token", data=form, headers=headers)
                            for name, url in urls.items()}  # fmt: skip
                rates: dict[str, list[float]] = {name: [] for name in urls}
                order = ["bare", "unlimited", "gateway"]
                for _ in range(ROUNDS):  # interleaved, in turn first and last, best of each
                    for name in order:
                        rates[name].append(rate(client, requests[name]))
                    order.reverse()
                token_request = requests["gateway"]
                token = client.send(token_request).json()["access_token"]
                ping = client.build_request("GET", f"{urls['gateway']}/v1/ping",
                                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                latencies = []
                for _ in range(PINGS):
                    start = time.perf_counter()
                    assert client.send(ping).status_code == 200
                    latencies.append((time.perf_counter() - start) * 1000)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)
    ours, baseline, unlimited = rates["gateway"], rates["bare"], rates["unlimited"]
    ratio = max(ours) / max(baseline)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"token endpoint: {max(ours):.0f} req/s = {ratio:.2f}x a bare ASGI handler on the same uvicorn and client "
          f"(target >= 0.5)")  # fmt: skip
    limits = max(ours) / max(unlimited)
    print(f"token endpoint with rate limiting: {max(ours):.0f} req/s = {limits:.2f}x the same gateway with "
          f"--no-rate-limits ({max(unlimited):.0f} req/s) (target >= 0.9; best of {ROUNDS} interleaved rounds)")
    print(f"ping path latency: p50 {quantiles[49]:.2f} ms, p99 {quantiles[98]:.2f} ms ({PINGS} sequential pings)")
    return {"token_ratio": ratio, "rate_limit_ratio": limits, "ping_p50_ms": quantiles[49],
            "ping_p99_ms": quantiles[98]}  # fmt: skip


if __name__ == "__main__":
    main()
