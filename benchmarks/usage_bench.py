"""What counting scope usage costs the gateway: the token endpoint and a scoped API route (the auth_request
decision of ``/authz``) served by a gateway that counts uses, as a ratio of the same gateway with
``--no-usage-counting`` (target: at least 0.95 on the route; the token endpoint counts nothing, so about 1).

Both gateways run with ``--no-rate-limits``, so that the rate limit's store write per request does not hide
the counter's cost. Interleaved rounds, best of each; no absolute time is asserted. At the end the counting
gateway is stopped and ``partnerctl status`` must show the route's scope as used (flushed at shutdown).
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
import yaml

from benchmarks.gateway_bench import PARTNER, free_port, onboarded, rate, wait_until_up


def _route_of(root: Path, scopes: list[str]) -> tuple[str, str]:
    """A (scope, path) of the catalog's routes that ``scopes`` open, its path parameters filled in."""
    for path in sorted((root / "policies").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") != "ScopeCatalog":
            continue
        for scope in document["spec"]["scopes"]:
            for route in scope.get("routes", []):
                if scope["name"] in scopes and route["method"] == "GET":
                    return scope["name"], route["path"].replace("{", "").replace("}", "")
    raise RuntimeError(f"no GET route for any of {scopes}")


def main() -> dict[str, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    rounds = max(3, round(7 * float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1"))))
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        env, pickup = onboarded(Path(folder))
        root = Path(folder) / "repo"
        ports = {"counting": free_port(), "off": free_port()}
        servers = {
            name: subprocess.Popen([partnerctl, "gateway", "serve", "--port", str(port), "--no-rate-limits",
                                    *(["--no-usage-counting"] if name == "off" else [])],
                                   env=env, stderr=subprocess.DEVNULL)
            for name, port in ports.items()
        }  # fmt: skip
        try:
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            for url in urls.values():
                wait_until_up(f"{url}/healthz")
            basic = base64.b64encode(f"{pickup['client_id']}:{pickup['client_secret']}".encode()).decode()
            form, headers = {"grant_type": "client_credentials"}, {"Authorization": f"Basic {basic}"}
            with httpx.Client() as client:
                tokens = {name: client.build_request("POST", f"{url}/oauth2/token", data=form, headers=headers)
                          for name, url in urls.items()}  # fmt: skip
                granted = {name: client.send(request).json() for name, request in tokens.items()}  # issuer: each's
                scope, path = _route_of(root, granted["counting"]["scope"].split())
                routes = {
                    name: client.build_request("GET", f"{url}/authz", headers={
                        "Authorization": f"Bearer {granted[name]['access_token']}", "X-Original-Method": "GET",
                        "X-Original-URI": path})
                    for name, url in urls.items()
                }  # fmt: skip
                rates: dict[str, list[float]] = {f"{kind} {name}": [] for kind in ("token", "route") for name in urls}
                order = ["off", "counting"]
                for _ in range(rounds):  # interleaved, in turn first and last, best of each
                    for name in order:
                        rates[f"token {name}"].append(rate(client, tokens[name]))
                        rates[f"route {name}"].append(rate(client, routes[name]))
                    order.reverse()
        finally:
            for server in servers.values():
                server.terminate()  # the counting gateway writes what it counted as it stops
                server.wait(timeout=30)
        status = json.loads(subprocess.run([partnerctl, "-o", "json", "status", PARTNER], env=env, check=True,
                                           capture_output=True, text=True).stdout)  # fmt: skip
    [entry] = status["partners"]
    used = {item["name"]: item["lastUsed"] for item in entry.get("scopeUsage", [])}
    if not used.get(scope):
        raise RuntimeError(f"the counting gateway recorded no use of {scope}: {used}")
    token_ratio = max(rates["token counting"]) / max(rates["token off"])
    route_ratio = max(rates["route counting"]) / max(rates["route off"])
    print(f"token endpoint with usage counting: {max(rates['token counting']):.0f} req/s = {token_ratio:.2f}x the "
          f"same gateway with --no-usage-counting ({max(rates['token off']):.0f} req/s) (target >= 0.95)")  # fmt: skip
    print(f"scoped route ({scope} via /authz) with usage counting: {max(rates['route counting']):.0f} req/s = "
          f"{route_ratio:.2f}x --no-usage-counting ({max(rates['route off']):.0f} req/s) (target >= 0.95; best of "
          f"{rounds} interleaved rounds)")  # fmt: skip
    return {"usage_token_ratio": token_ratio, "usage_route_ratio": route_ratio}


if __name__ == "__main__":
    main()
