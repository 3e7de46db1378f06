"""A real etcd and kube-apiserver on free loopback ports, built by ``build_kube.sh`` (``make kube``).

The API server serves TLS with a certificate of a CA made here (clients verify it), authenticates
two static-token identities — an administrator (``system:masters``) and
``system:serviceaccount:scp:partnerctl``, which RBAC matches as the ``partnerctl`` ServiceAccount of
``deploy/base/rbac.yaml`` — and authorizes with RBAC, as a cluster does::

    with KubeServers(bin_dir) as servers:
        servers.admin_kubeconfig, servers.user_kubeconfig
        servers.kubectl("get", "ns")          # the built kubectl, as the administrator

Every instance has its own folder, etcd data and ports, so two test sessions never clash; a port
taken between choosing and binding it is retried with new ones.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


class KubeServersError(RuntimeError):
    pass


class _PortInUse(KubeServersError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _distinct_free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_binaries() -> Path | None:
    """The folder of kube-apiserver, kubectl and etcd, built (or found built) by ``build_kube.sh``;
    None where Go is missing to build them."""
    done = subprocess.run(["bash", str(HERE / "build_kube.sh")], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode == 3:  # no Go on this machine
        return None
    if done.returncode != 0:
        raise KubeServersError(f"build_kube.sh failed ({done.returncode}); run make kube to see why")
    return Path(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- TLS
def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise KubeServersError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


def _make_pki_openssl(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=partnerctl-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-new", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=d)
    (d / "apiserver.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "365",
             "-extfile", "apiserver.ext", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def _make_pki_cryptography(d: Path) -> None:  # fallback when openssl is missing
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partnerctl-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "ca.key").write_bytes(pem_key(ca_key))
    (d / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "apiserver.key").write_bytes(pem_key(key))
    (d / "sa.key").write_bytes(pem_key(sa))
    (d / "sa.pub").write_bytes(sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def make_pki(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    if shutil.which("openssl"):
        _make_pki_openssl(d)
    else:
        _make_pki_cryptography(d)


# --------------------------------------------------------------------- processes
def _pdeathsig() -> None:
    """preexec_fn: SIGKILL the child if the thread that started it dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Identity:
    user: str
    groups: list[str]
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    uid: str = ""


class KubeServers:
    """etcd + kube-apiserver on 127.0.0.1 with static-token identities and RBAC."""

    SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

    def __init__(
        self,
        bin_dir: Path,
        *,
        workdir: str | os.PathLike | None = None,
        sa_namespace: str = "scp",
        sa_name: str = "partnerctl",
        startup_timeout: float = 90.0,
        keep_workdir: bool = False,
        watch_cache: bool = True,
        extra_apiserver_args: list[str] | tuple[str, ...] = (),
        extra_etcd_args: list[str] | tuple[str, ...] = (),
        apiserver_env: dict[str, str] | None = None,
        port_retries: int = 3,
    ) -> None:
        self.bin_dir = bin_dir
        self._workdir_arg = workdir
        self.startup_timeout = startup_timeout
        self.keep_workdir = keep_workdir
        self.watch_cache = watch_cache
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.extra_etcd_args = list(extra_etcd_args)
        self.apiserver_env = dict(apiserver_env or {})
        self.port_retries = port_retries

        self.admin = Identity("admin", ["system:masters"], uid="admin-uid")
        self.user = Identity(
            f"system:serviceaccount:{sa_namespace}:{sa_name}",
            ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}",
             "system:authenticated"],
            uid=f"{sa_namespace}-{sa_name}-uid",
        )
        self.workdir: Path | None = None
        self.etcd_proc: subprocess.Popen | None = None
        self.apiserver_proc: subprocess.Popen | None = None
        self.etcd_url = ""
        self.server_url = ""
        self.ca_file: Path | None = None
        self.admin_kubeconfig: Path | None = None
        self.user_kubeconfig: Path | None = None
        self.timings: dict[str, float] = {}
        self._logs: list = []

    # ------------------------------------------------------------------ public
    def __enter__(self) -> KubeServers:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def env(self, admin: bool = True) -> dict[str, str]:
        """os.environ plus KUBECONFIG pointing at the admin (or least-privilege) config."""
        e = dict(os.environ)
        e["KUBECONFIG"] = str(self.admin_kubeconfig if admin else self.user_kubeconfig)
        return e

    def kubectl(self, *args: str, admin: bool = True, input: str | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        kc = self.admin_kubeconfig if admin else self.user_kubeconfig
        r = subprocess.run([str(self.kubectl_path), f"--kubeconfig={kc}", *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise KubeServersError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n"
                                   f"{r.stdout}\n{r.stderr}")
        return r

    def rss_kib(self) -> dict[str, int | None]:
        return {
            "etcd": _rss_kib(self.etcd_proc.pid) if self.etcd_proc else None,
            "kube-apiserver": _rss_kib(self.apiserver_proc.pid) if self.apiserver_proc else None,
        }

    def start(self) -> KubeServers:
        if self._workdir_arg:
            self.workdir = Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="partnerctl-kube-"))
        atexit.register(self.stop)
        t0 = time.monotonic()
        try:
            make_pki(self.workdir / "pki")
            self.ca_file = self.workdir / "pki" / "ca.crt"
            self._write_tokens()
            self.timings["pki"] = time.monotonic() - t0
            for attempt in range(1, self.port_retries + 1):
                try:
                    self._start_once(t0)
                    break
                except _PortInUse:
                    self._kill_procs()
                    if attempt == self.port_retries:
                        raise
            self._write_kubeconfigs()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        self._kill_procs()
        for f in self._logs:
            with contextlib.suppress(Exception):
                f.close()
        self._logs = []
        if self.workdir and not self.keep_workdir and not self._workdir_arg:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # ----------------------------------------------------------------- private
    def _write_tokens(self) -> None:
        lines = []
        for ident in (self.admin, self.user):
            lines.append(f'{ident.token},{ident.user},{ident.uid},"{",".join(ident.groups)}"')
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        os.chmod(self.workdir / "tokens.csv", 0o600)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - open while the server runs
        self._logs.append(log)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir, env=env, start_new_session=True,
                                preexec_fn=_pdeathsig)

    def _check_alive(self, proc: subprocess.Popen, name: str) -> None:
        if proc.poll() is None:
            return
        log = self.workdir / f"{name}.log"
        tail = _tail(log)
        if "address already in use" in tail:
            raise _PortInUse(f"{name}: port in use")
        raise KubeServersError(f"{name} exited with code {proc.returncode}; log tail "
                               f"({log}):\n{tail}")

    def _start_once(self, t0: float) -> None:
        wd = self.workdir
        client_port, peer_port, api_port = _distinct_free_ports(3)
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data_dir = wd / "etcd-data"
        shutil.rmtree(data_dir, ignore_errors=True)
        self.etcd_proc = self._spawn("etcd", [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token=partnerctl-{os.getpid()}-{client_port}",
            "--unsafe-no-fsync",          # test data only: much faster writes
            "--log-level=warn",
            *self.extra_etcd_args,
        ])
        self._wait_etcd()
        self.timings["etcd_ready"] = time.monotonic() - t0

        pki = wd / "pki"
        self.server_url = f"https://127.0.0.1:{api_port}"
        args = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={wd / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={wd / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer={self.SA_ISSUER}",
            f"--api-audiences={self.SA_ISSUER}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # nothing here runs pods/nodes: no Endpoints for the "kubernetes"
            # Service (a loopback address is not a valid endpoint anyway)
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            f"--watch-cache={'true' if self.watch_cache else 'false'}",
            "--event-ttl=10m",
            *self.extra_apiserver_args,
        ]
        env = dict(os.environ)
        env.update(self.apiserver_env)
        self.apiserver_proc = self._spawn("kube-apiserver", args, env=env)
        self._wait_ready(t0)
        self.timings["apiserver_ready"] = time.monotonic() - t0

    def _deadline_error(self, what: str) -> KubeServersError:
        return KubeServersError(
            f"{what} not ready after {self.startup_timeout:.0f}s (workdir {self.workdir})\n"
            f"--- etcd.log tail ---\n{_tail(self.workdir / 'etcd.log')}\n"
            f"--- kube-apiserver.log tail ---\n{_tail(self.workdir / 'kube-apiserver.log')}")

    def _wait_etcd(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_alive(self.etcd_proc, "etcd")
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self._deadline_error("etcd")
            time.sleep(0.05)

    def _wait_ready(self, t0: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(self.server_url + "/readyz",
                                     headers={"Authorization": f"Bearer {self.admin.token}"})
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while True:
            self._check_alive(self.etcd_proc, "etcd")
            self._check_alive(self.apiserver_proc, "kube-apiserver")
            try:
                with urllib.request.urlopen(req, timeout=3, context=ctx) as r:
                    body = r.read().decode()
                    if r.status == 200 and body.strip() == "ok":
                        return
                    last = body
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[-2000:]}"
            except (OSError, ValueError) as e:
                last = repr(e)
            if "apiserver_listening" not in self.timings and last and not last.startswith(("URLError", "Connection")):
                self.timings["apiserver_listening"] = time.monotonic() - t0
            if time.monotonic() > deadline:
                err = self._deadline_error("kube-apiserver /readyz")
                raise KubeServersError(f"{err}\n--- last /readyz answer ---\n{last}")
            time.sleep(0.1)

    def _kubeconfig(self, ident: Identity, name: str) -> dict:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": self.server_url, "certificate-authority-data": ca}}],
            "users": [{"name": name, "user": {"token": ident.token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
            "current-context": name,
            "preferences": {},
        }

    def _write_kubeconfigs(self) -> None:
        # JSON is valid YAML: kubectl and the Python client both read it.
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"
        self.user_kubeconfig = self.workdir / "user.kubeconfig"
        for path, ident, name in ((self.admin_kubeconfig, self.admin, "admin"),
                                  (self.user_kubeconfig, self.user, "partnerctl")):
            path.write_text(json.dumps(self._kubeconfig(ident, name), indent=2))
            os.chmod(path, 0o600)

    def _kill_procs(self) -> None:
        for attr in ("apiserver_proc", "etcd_proc"):  # apiserver first
            p = getattr(self, attr)
            if p is None:
                continue
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
            setattr(self, attr, None)
