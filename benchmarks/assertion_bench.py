"""The token endpoint with private_key_jwt client authentication (an ES256 client assertion, checked against
the partner's inline JWKS, its jti remembered in the state store) as a ratio of the same endpoint with a
client secret (HTTP Basic), on one gateway and one client, interleaved (DESIGN §7; reported, target ≥ 0.5).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks.gateway_bench import free_port, wait_until_up
from benchmarks.generate import commit_all, generate_repository

REQUESTS = 800
ROUNDS = 4
ISSUER = "https://gateway.bench.example"
METHOD = "    method: oauth2-client-credentials\n"


def rate(client: httpx.Client, requests: list[httpx.Request]) -> float:
    start = time.perf_counter()
    for request in requests:
        response = client.send(request)
        assert response.status_code == 200, response.text
    return len(requests) / (time.perf_counter() - start)


def main() -> dict[str, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk = {**public, "kid": "bench-1", "alg": "ES256", "use": "sig"}
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root, home = Path(folder) / "repo", Path(folder) / "home"
        files = generate_repository(root, 4)
        keyed = next(path for path in files if path.stem == "partner-00002")
        keyed.write_text(keyed.read_text().replace(
            METHOD, f"{METHOD}    clientAuthentication: private_key_jwt\n    jwks: {json.dumps({'keys': [jwk]})}\n"))
        commit_all(root)
        env = {**os.environ, "PARTNERCTL_HOME": str(home), "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1"}
        env.pop("PARTNERCTL_NOW", None)
        base = [partnerctl, "--repo", str(root), "--approval", "none"]
        subprocess.run([*base, "apply"], env=env, check=True, capture_output=True)
        pickup = json.loads(subprocess.run([*base, "-o", "json", "credentials", "deliver",
                                            "ministry-social-affairs/partner-00000"], env=env, check=True,
                                           capture_output=True, text=True).stdout)  # fmt: skip
        port = free_port()
        server = subprocess.Popen([partnerctl, "gateway", "serve", "--port", str(port), "--issuer", ISSUER],
                                  env=env, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{url}/healthz")
            client_id = "ministry-social-affairs.partner-00002"
            basic = base64.b64encode(f"{pickup['client_id']}:{pickup['client_secret']}".encode()).decode()
            form = {"grant_type": "client_credentials"}
            rates: dict[str, list[float]] = {"secret": [], "assertion": []}
            with httpx.Client() as client:
                for _ in range(ROUNDS):
                    secret = [client.build_request("POST", f"{url}/oauth2/token", data=form,
                                                   headers={"Authorization": f"Basic {basic}"})] * REQUESTS
                    now = int(time.time())
                    # Signed before timing: the partner's signing is not the gateway's cost.
                    assertions = [jwt.encode({"iss": client_id, "sub": client_id, "aud": f"{ISSUER}/oauth2/token",
                                              "iat": now, "exp": now + 240, "jti": uuid.uuid4().hex},
                                             key, algorithm="ES256", headers={"kid": "bench-1"})
                                  for _ in range(REQUESTS)]  # fmt: skip
                    keyed_requests = [client.build_request("POST", f"{url}/oauth2/token", data={
                        **form, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": assertion}) for assertion in assertions]  # fmt: skip
                    rates["secret"].append(rate(client, secret))
                    rates["assertion"].append(rate(client, keyed_requests))
        finally:
            server.terminate()
            server.wait(timeout=10)
    ratio = max(rates["assertion"]) / max(rates["secret"])
    print(f"token endpoint with private_key_jwt: {max(rates['assertion']):.0f} req/s = {ratio:.2f}x client-secret "
          f"tokens ({max(rates['secret']):.0f} req/s) on the same gateway (target >= 0.5; best of {ROUNDS} "
          "interleaved rounds; assertions signed before timing)")  # fmt: skip
    return {"private_key_jwt_ratio": ratio}


if __name__ == "__main__":
    main()
