"""``partnerctl demo``: a narrated tour of UC-105 on the embedded defaults, in a temporary folder.

Every step runs the real ``partnerctl`` command a person would type (shown with ``$``), against a
real git repository with SSH-signed approvals, a real gateway process and a partner webhook receiver
that verifies signatures with the Standard Webhooks library. It ends with the console serving the
tour's installation: in a terminal until Enter or Ctrl-C, otherwise (CI, ``make demo`` piped) only
long enough to show that it answers. ``PARTNERCTL_DEMO_CONSOLE`` = ``serve``, ``check`` or ``off``
overrides that choice.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from ruamel.yaml import YAML
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reconciler.backends.git import run_git
from reconciler.errors import ReconcilerError, UsageError

TENANT = "ministry-social-affairs"
PARTNER = "northbridge-bank"
KEY = f"{TENANT}/{PARTNER}"
KEYED_PARTNER = "national-health-insurance-fund"
CONSOLE_MODE = "PARTNERCTL_DEMO_CONSOLE"
CONSOLE_MODES = ("serve", "check", "off")  # until Enter or Ctrl-C; start, answer, stop; not at all
CONSOLE_PORT = 8090  # the console's default, when free


class Tour:
    def __init__(self, examples: Path, echo: Any, console: str = "off") -> None:
        self.examples = examples
        self.echo = echo
        self.console = console
        self.folder = Path(tempfile.mkdtemp(prefix="partnerctl-demo-"))
        self.repo = self.folder / "partners-repo"
        self.home = self.folder / "home"
        self.step_number = 0
        self.env = {
            **os.environ,
            "PARTNERCTL_HOME": str(self.home),
            "PARTNERCTL_TRUST_ROOT": str(self.folder / "trust-root.yaml"),
            "PARTNERCTL_DEV_ALLOW_LOOPBACK": "1",
            "GIT_AUTHOR_NAME": "Ivy Integration", "GIT_AUTHOR_EMAIL": "ivy@platform.example",
            "GIT_COMMITTER_NAME": "Ivy Integration", "GIT_COMMITTER_EMAIL": "ivy@platform.example",
        }  # fmt: skip
        self.env.pop("PARTNERCTL_NOW", None)
        self._processes: list[subprocess.Popen[bytes]] = []
        self.receiver_status = 204
        self._servers: list[ThreadingHTTPServer] = []

    # --- narration ----------------------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.step_number += 1
        self.echo(f"\n[{self.step_number}] {text}")

    def run(self, *args: str, show: bool = True, check: bool = True, cwd: Path | None = None) -> str:
        """Run ``partnerctl args``; a non-zero exit stops the tour (``check=False`` to allow it)."""
        command = [str(Path(sys.executable).parent / "partnerctl"), *args]
        if show:
            self.echo(f"    $ partnerctl {shlex.join(args)}")
        done = subprocess.run(command, cwd=cwd or self.repo, env=self.env, capture_output=True, text=True,
                              check=False, timeout=120)  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"partnerctl {' '.join(args)} failed: {done.stderr.strip()}")
        if show:
            for line in done.stdout.rstrip().splitlines():
                self.echo(f"      {line}")
        return done.stdout

    def git(self, *args: str) -> str:
        return run_git(self.repo, *args, env=self.env)

    # --- the tour -----------------------------------------------------------------------------------

    def tour(self) -> None:
        started = time.monotonic()
        self.echo("partnerctl demo: onboarding a partner (UC-105) end to end, on the embedded defaults.")
        self.echo(f"Everything happens in {self.folder}; nothing outside it is touched. The partner's webhook")
        self.echo("receiver runs on loopback, so the tour sets PARTNERCTL_DEV_ALLOW_LOOPBACK=1 (never in production).")
        receiver_url, received = self.start_receiver()

        self.step("A platform owner and a Tenant Admin of the ministry get SSH keys; the platform owners' trust "
                  "root stays outside the repository.")  # fmt: skip
        owner = self.keypair("owner@platform.example")
        admin = self.keypair("amina.okafor@msa.example")
        (self.folder / "trust-root.yaml").write_text(
            "apiVersion: partners.scp.dev/v1\nkind: TrustRoot\nmetadata: {name: platform-owners}\nspec:\n"
            f'  approvers:\n    - {{name: Priya Owner, email: owner@platform.example, sshKey: "{owner[1]}"}}\n'
        )

        self.step("The platform owner commits the scope catalog and the ministry's tenant policy, signed.")
        self.init_repository(admin[1])
        self.git("add", "-A")
        self.signed_commit(owner[0], "Scope catalog and the ministry's tenant policy",
                           "owner@platform.example", "PLAT-2026-001")  # fmt: skip

        self.step("The Integration Manager proposes Northbridge Bank on a branch; CI validates it.")
        self.git("checkout", "-q", "-b", "onboard-northbridge")
        self.write_partner(receiver_url)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "Onboard Northbridge Bank")
        self.run("validate", f"partners/{TENANT}/{PARTNER}.yaml")
        self.git("checkout", "-q", "main")

        self.step("The Tenant Admin reviews what the branch approves and signs the merge with a policy document ID.")
        self.run("approve", "onboard-northbridge", "--policy-document", "DPA-2026-031", "--yes",
                 "--signing-key", str(admin[0]), "--approver", "amina.okafor@msa.example")  # fmt: skip

        self.step("The reconciler plans and applies the approved change: credentials (stored hashed), the "
                  "webhook, a signed ping that the partner's receiver verifies.")  # fmt: skip
        self.run("plan")
        self.run("apply")
        verified = [event for event in received if event.get("type") == "ping"]
        self.echo(f"      partner receiver: {len(verified)} ping(s) with a valid Standard Webhooks signature")

        self.step("The gateway starts; the Partner Tech Lead picks up the credentials, once.")
        gateway = self.start_gateway()
        pickup = json.loads(self.run("credentials", "deliver", KEY, "--output", "json", show=False))
        self.echo(f"    $ partnerctl credentials deliver {KEY}")
        self.echo(f"      client_id {pickup['client_id']}, client_secret scp_cs_… (shown to the partner only), "
                  f"webhook secret for {', '.join(pickup['webhook_secrets'])}")  # fmt: skip
        again = subprocess.run([str(Path(sys.executable).parent / "partnerctl"), "credentials", "deliver", KEY],
                               env=self.env, cwd=self.repo, capture_output=True, text=True, check=False)  # fmt: skip
        self.echo(f"      a second pickup is refused (exit {again.returncode}) and audited")

        self.step("The partner gets a token (OAuth2 client credentials) and calls /v1/ping: the handshake.")
        with httpx.Client(base_url=gateway, timeout=10) as client:
            token = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                auth=(pickup["client_id"], pickup["client_secret"])).json()  # fmt: skip
            self.echo(f"      POST /oauth2/token -> {token['token_type']} token, scopes: {token['scope']}")
            bearer = {"Authorization": f"Bearer {token['access_token']}"}
            ping = client.get("/v1/ping", headers=bearer)
            self.echo(f"      GET /v1/ping -> {ping.status_code} {ping.json()}")
            self.run("apply", show=False)
            self.run("status")

            self.step("PRIV-01: a request outside the approved scopes is refused and audited.")
            denied = client.get("/v1/beneficiaries/42", headers=bearer)
            self.echo(f"      GET /v1/beneficiaries/42 -> {denied.status_code} "
                      f"{denied.headers.get('www-authenticate')}")  # fmt: skip

        self.step("The platform publishes a payment event; the dispatcher delivers it signed, mapped, and without "
                  "the beneficiary's name (personal data is above a bank's clearance).")  # fmt: skip
        event = json.dumps({"payment_id": "pay-2026-0042", "status": "paid", "amount": 125000,
                            "beneficiary_name": "Ana Banda"})  # fmt: skip
        self.run("events", "publish", "--type", "payment.status.changed", "--data", event)
        self.run("dispatch", "--once")
        delivered = [item for item in received if item.get("type") == "payment.status.changed"]
        self.echo(f"      partner receiver verified and got: {delivered[-1]['data'] if delivered else 'nothing'}")

        self.step("LOG-01: the partner's endpoint starts answering 503; after 5 consecutive failures the "
                  "webhook is deactivated and new deliveries are held, not dropped.")  # fmt: skip
        self.receiver_status = 503
        self.run("events", "publish", "--type", "payment.status.changed", "--data", event, show=False)
        self.run("dispatch", "--once", "--schedule", "0,0,0,0,0,0,0,0")  # retries at once, for the tour
        self.run("status", KEY)
        self.step("The endpoint is fixed; the next connectivity check's ping succeeds, the webhook recovers and "
                  "the held delivery goes out.")  # fmt: skip
        self.receiver_status = 204
        self.run("apply", show=False)
        self.run("dispatch", "--once")
        self.echo(f"      partner receiver has now verified {len(received)} signed request(s)")

        self.step("The National Health Insurance Fund may hold no shared secret: it onboards with private_key_jwt. "
                  "Its public key is in the reviewed manifest; its private key never leaves it.")  # fmt: skip
        keyed = ec.generate_private_key(ec.SECP256R1())
        self.git("checkout", "-q", "-b", "onboard-nhif")
        self.write_keyed_partner(keyed)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "Onboard the National Health Insurance Fund with private_key_jwt")
        self.git("checkout", "-q", "main")
        self.run("approve", "onboard-nhif", "--policy-document", "DPA-2026-044", "--yes",
                 "--signing-key", str(admin[0]), "--approver", "amina.okafor@msa.example")  # fmt: skip
        self.run("apply")
        client_id = f"{TENANT}.{KEYED_PARTNER}"
        now = int(time.time())
        assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": f"{gateway}/oauth2/token", "iat": now,
                                "exp": now + 120, "jti": uuid.uuid4().hex},
                               keyed, algorithm="ES256", headers={"kid": "nhif-2026"})  # fmt: skip
        with httpx.Client(base_url=gateway, timeout=10) as client:
            form = {"grant_type": "client_credentials", "client_assertion": assertion,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}  # fmt: skip
            token = client.post("/oauth2/token", data=form).json()
            self.echo(f"      POST /oauth2/token with a client assertion signed by its key -> {token['token_type']} "
                      f"token, scopes: {token['scope']}")  # fmt: skip
            replayed = client.post("/oauth2/token", data=form)
            self.echo(f"      the same assertion again -> {replayed.status_code} {replayed.json()['error']} (a replay)")
            ping = client.get("/v1/ping", headers={"Authorization": f"Bearer {token['access_token']}"})
            self.echo(f"      GET /v1/ping -> {ping.status_code} {ping.json()}")
        self.run("apply", show=False)
        self.run("status", f"{TENANT}/{KEYED_PARTNER}")

        self.step("An unapproved change pushed straight to main is blocked; the approved version stays live.")
        path = self.repo / "partners" / TENANT / f"{PARTNER}.yaml"
        yaml = YAML()
        partner = yaml.load(path.read_text())
        partner["spec"]["scopes"].append("payment:batch:read")
        with path.open("w") as handle:
            yaml.dump(partner, handle)
        self.git("commit", "-q", "-am", "Let Northbridge read payment batches")
        self.run("plan")

        self.step("The audit log is a hash chain: every credential and partner event, tamper-evident.")
        self.run("audit", "verify")
        console = None
        if self.console != "off":
            self.step("The console shows the same installation in a browser, read-only: partners at a glance, "
                      "each partner's approvals, scopes and deliveries, what awaits approval, the report.")  # fmt: skip
            console = self.start_console()
            self.echo(f"      {console}  (on loopback: no sign-in)")
        self.echo(f"\nDone in {time.monotonic() - started:.0f} s: Northbridge Bank (client secret) and the National "
                  "Health Insurance Fund (private_key_jwt) are onboarded, their scopes are enforced, and every step "
                  "is audited.")  # fmt: skip
        if console is not None:
            self.serve_console(console)

    # --- helpers ------------------------------------------------------------------------------------

    def keypair(self, email: str) -> tuple[Path, str]:
        key = self.folder / "keys" / email.split("@")[0].replace(".", "-")
        key.parent.mkdir(exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)], check=True)
        return key, key.with_suffix(".pub").read_text().strip()

    def init_repository(self, admin_key: str) -> None:
        (self.repo / "policies").mkdir(parents=True)
        shutil.copy(self.examples / "policies" / "scopes.yaml", self.repo / "policies" / "scopes.yaml")
        yaml = YAML()  # round-trip: the example's comments survive the edit
        policy = yaml.load((self.examples / "policies" / f"{TENANT}.yaml").read_text())
        policy["spec"]["approvers"] = [{"name": "Amina Okafor", "email": "amina.okafor@msa.example",
                                        "github": "amina-okafor-msa", "sshKey": admin_key}]  # fmt: skip
        with (self.repo / "policies" / f"{TENANT}.yaml").open("w") as handle:
            yaml.dump(policy, handle)
        run_git(self.repo, "init", "-q", "-b", "main", env=self.env)

    def write_partner(self, receiver_url: str) -> None:
        yaml = YAML()
        partner = yaml.load((self.examples / "partners" / TENANT / f"{PARTNER}.yaml").read_text())
        for hook in partner["spec"].get("webhooks", []):
            hook["url"] = f"{receiver_url}/{hook['name']}"
        target = self.repo / "partners" / TENANT / f"{PARTNER}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        yaml.dump(partner, buffer)
        target.write_text(buffer.getvalue())

    def write_keyed_partner(self, key: ec.EllipticCurvePrivateKey) -> None:
        """The example's health insurance fund, with private_key_jwt and the public half of ``key`` inline."""
        yaml = YAML()
        partner = yaml.load((self.examples / "partners" / TENANT / f"{KEYED_PARTNER}.yaml").read_text())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        partner["spec"]["auth"] = {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt",
                                   "jwks": {"keys": [{**public, "kid": "nhif-2026"}]}}  # fmt: skip
        partner["spec"].pop("webhooks", None)  # the tour's receiver verifies Northbridge's signatures only
        partner["spec"].pop("mappings", None)
        buffer = io.StringIO()
        yaml.dump(partner, buffer)
        (self.repo / "partners" / TENANT / f"{KEYED_PARTNER}.yaml").write_text(buffer.getvalue())

    def signed_commit(self, key: Path, title: str, approver: str, document: str) -> None:
        message = f"{title}\n\nApproved-by: {approver}\nPolicy-Document: {document}\n"
        self.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S", "-m", message)

    def start_receiver(self) -> tuple[str, list[dict[str, Any]]]:
        """The partner's webhook endpoint: verifies every request with the Standard Webhooks library."""
        received: list[dict[str, Any]] = []
        tour = self

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if tour.receiver_status >= 300:
                    self.send_response(tour.receiver_status)
                    self.end_headers()
                    return
                secret = tour.webhook_secret(self.path.strip("/"))
                try:
                    received.append(Webhook(secret).verify(body, {k: v for k, v in self.headers.items()}))
                    self.send_response(204)
                except (WebhookVerificationError, ValueError, TypeError):
                    self.send_response(401)
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", received

    def webhook_secret(self, name: str) -> str:
        """The receiver reads its signing secret the way the reconciler keeps it (the partner would
        have it from the one-time pickup, which happens later in this tour)."""
        from reconciler.backends.sqlite.secrets import LocalSecretStore

        store = LocalSecretStore(self.home / "secrets")
        try:
            return store.webhook_secret(KEY, name) or "whsec_" + "A" * 43 + "="
        finally:
            store.close()

    def start_gateway(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.env["PARTNERCTL_GATEWAY_URL"] = url
        command = [str(Path(sys.executable).parent / "partnerctl"), "gateway", "serve", "--port", str(port)]
        self.echo(f"    $ partnerctl gateway serve --port {port} &")
        process = subprocess.Popen(command, env=self.env, cwd=self.repo, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        self._processes.append(process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    def start_console(self) -> str:
        """``partnerctl console serve`` over the tour's installation, started like the gateway."""
        port = CONSOLE_PORT if self.console == "serve" and port_is_free(CONSOLE_PORT) else free_port()
        url = f"http://127.0.0.1:{port}/"
        command = [str(Path(sys.executable).parent / "partnerctl"), "console", "serve", "--port", str(port)]
        self.echo(f"    $ partnerctl console serve --port {port} &")
        log = self.folder / "console.log"
        with log.open("wb") as output:
            process = subprocess.Popen(command, env=self.env, cwd=self.repo, stdout=subprocess.DEVNULL,
                                       stderr=output)  # fmt: skip
        self._processes.append(process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        said = log.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"the console did not start{': ' + said[-1] if said else ''}")

    def serve_console(self, url: str) -> None:
        """Until Enter or Ctrl-C in a terminal; elsewhere the tour has shown the console answers, and ends."""
        if self.console != "serve":
            self.echo(f"The console answered at {url} and stops with the tour (not a terminal). To browse it, run "
                      f"the demo in a terminal, or with {CONSOLE_MODE}=serve.")  # fmt: skip
            return
        self.echo(f"The console: {url} (open it in a browser). Press Enter or Ctrl-C to stop it and remove "
                  f"{self.folder}.")  # fmt: skip
        try:
            input()
        except (KeyboardInterrupt, EOFError):
            self.echo("")

    def cleanup(self) -> None:
        for process in self._processes:
            process.terminate()
            process.wait(timeout=10)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def console_mode() -> str:
    """PARTNERCTL_DEMO_CONSOLE when set; else serve in a terminal (stdin and stdout), check elsewhere."""
    chosen = os.environ.get(CONSOLE_MODE, "").strip().lower()
    if chosen and chosen not in CONSOLE_MODES:
        raise UsageError(f"{CONSOLE_MODE}={chosen}: expected one of {', '.join(CONSOLE_MODES)}")
    return chosen or ("serve" if sys.stdin.isatty() and sys.stdout.isatty() else "check")


NEEDED = ("policies/scopes.yaml", f"policies/{TENANT}.yaml", f"partners/{TENANT}/{PARTNER}.yaml",
          f"partners/{TENANT}/{KEYED_PARTNER}.yaml")


class DemoFailed(ReconcilerError):
    """A step of the tour did not go as it should; the message says which."""


def run_demo(examples: Path, echo: Any) -> None:
    missing = [name for name in NEEDED if not (examples / name).is_file()]
    if missing:
        raise UsageError(
            f"{examples} is not the example partner repository (no {missing[0]}); run the demo from a partnerctl "
            "checkout, or pass --repo pointing at one"
        )
    if shutil.which("ssh-keygen") is None:
        raise UsageError("the demo signs approvals with SSH keys: install OpenSSH's ssh-keygen")
    tour = Tour(examples, echo, console_mode())
    try:
        tour.tour()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        raise DemoFailed(f"the tour stopped: {error}") from error
    finally:
        tour.cleanup()
