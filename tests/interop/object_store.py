"""Object storage on loopback, for payloads by reference.

- `S3Server`: moto's own server (PyPI `moto[server]`) in a process of its own on 127.0.0.1, so that
  each may have its own settings. With `auth=True` it checks every request's SigV4 signature
  against IAM users it knows, and their policies (moto's `INITIAL_NO_AUTH_ACTION_COUNT`): the
  first requests, which create the users and their policies, go unchecked; after that
  a wrong key is `InvalidAccessKeyId`, a wrong secret `SignatureDoesNotMatch`, and a user without
  `s3:GetObject` `AccessDenied`, as S3 answers them.
- `Imds`: EC2's instance metadata service, IMDSv2 only (`AWS_METADATA_ENDPOINT`), handing out
  a role session.
- `WebIdentitySts`: STS's AssumeRoleWithWebIdentity over TLS (a private CA), as IRSA uses it.
- `CredentialsEndpoint`: the container credentials endpoint of ECS and EKS Pod Identity
  (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, or
  Batch's `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on 169.254.170.2), which moto does not have:
  it hands out given keys to a request bearing the token, and records each.
- `FaultProxy`: passes requests to an upstream server, except that it answers the first GETs
  of objects with a failure of our choosing (503 SlowDown, S3's wrong-region answers), or
  checks a presigned URL's expiry as S3 does (moto does not).
- `EndlessObject`: an object of any claimed size whose bytes are made as they are sent, with or
  without Content-Length, counting what it sent: to attack the size bound without 2 GB of disk.
"""

from __future__ import annotations

import calendar
import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import boto3
from botocore.config import Config

REGION = "us-east-1"
BUCKET = "wove-payloads"
# The keys of moto's root account: the setup runs with them before the checks begin.
ROOT_KEYS = ("AKIAROOTSETUP0000000", "root-setup-secret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Keys:
    access_key: str
    secret_key: str
    session_token: str = ""

    def env(self) -> Dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


class S3Server:
    """moto's server on loopback, with a bucket; `auth` turns on its IAM checks (see the module)."""

    def __init__(self, workdir: Path, auth: bool = False) -> None:
        self.port = free_port()
        self.auth = auth
        self.log = Path(workdir) / f"moto-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if auth:
            # The IAM and STS requests below (three per user, three for the role) go unchecked;
            # every later one is checked.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "12"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)
        self.admin = Keys(*ROOT_KEYS)
        self.reader = Keys(*ROOT_KEYS)
        self.nobody = Keys(*ROOT_KEYS)
        self.role_session = Keys(*ROOT_KEYS)
        if auth:
            iam = self._client("iam", Keys(*ROOT_KEYS))
            made: List[Keys] = []
            for name, actions in (("admin", ["s3:*"]), ("reader", ["s3:GetObject", "s3:ListBucket"]),
                                  ("nobody", ["s3:ListAllMyBuckets"])):
                iam.create_user(UserName=name)  # 1 request each
                key = iam.create_access_key(UserName=name)["AccessKey"]  # 1
                iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps({  # 1
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": actions,
                                   "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}],
                }))
                made.append(Keys(key["AccessKeyId"], key["SecretAccessKey"]))
            self.admin, self.reader, self.nobody = made
            # A role that may read, and a session of it: what ECS or EKS Pod Identity hand a container.
            role = iam.create_role(RoleName="job-role", AssumeRolePolicyDocument=json.dumps({  # 1
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                        "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
            iam.put_role_policy(RoleName="job-role", PolicyName="read", PolicyDocument=json.dumps({  # 1
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                               "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}))
            session = self._client("sts", Keys(*ROOT_KEYS)).assume_role(  # 1
                RoleArn=role, RoleSessionName="job")["Credentials"]
            self.role_session = Keys(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
        # Checked in auth mode: the admin may.
        self.s3(self.admin).create_bucket(Bucket=BUCKET)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _client(self, service: str, keys: Keys, endpoint: Optional[str] = None):
        return boto3.client(
            service, region_name=REGION, endpoint_url=endpoint or self.url,
            aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4"),
        )

    def s3(self, keys: Optional[Keys] = None, endpoint: Optional[str] = None):
        return self._client("s3", keys or self.admin, endpoint)

    def put(self, key: str, data: bytes) -> str:
        """Store `data` at `key`; return its reference, `s3://bucket/key`."""
        self.s3().put_object(Bucket=BUCKET, Key=key, Body=data)
        return f"s3://{BUCKET}/{key}"

    def presign(self, key: str, expires_in: int, endpoint: Optional[str] = None) -> str:
        return self.s3(endpoint=endpoint).generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires_in)

    def exists(self, key: str) -> bool:
        try:
            self.s3().head_object(Bucket=BUCKET, Key=key)
            return True
        except self.s3().exceptions.ClientError:
            return False

    def keys(self, prefix: str = "") -> List[str]:
        listed = self.s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def worker_env(self, keys: Optional[Keys] = None, endpoint: Optional[str] = None) -> Dict[str, str]:
        """What a job's container has to reach this store: its endpoint, region and identity.
        IMDS is pointed at a closed loopback port: nothing leaves the machine."""
        env = {
            "AWS_ENDPOINT_URL": endpoint or self.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": REGION,
            "AWS_METADATA_ENDPOINT": "http://127.0.0.1:9",
        }
        if keys is not None:
            env.update(keys.env())
        return env

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class _Server:
    def __init__(self, handler: type, address: Tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self._server = ThreadingHTTPServer(address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class CredentialsEndpoint(_Server):
    """ECS / EKS Pod Identity container credentials: `GET /creds` with `Authorization: <token>`
    (`token=None`: no token asked, as for Batch's relative URI). `address` is where it listens:
    ECS's own is 169.254.170.2:80 (see netns_ecs.py)."""

    def __init__(self, keys: Keys, token: Optional[str], address: Tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.keys, self.token = keys, token
        self.requests: List[Dict[str, Optional[str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                if owner.token is not None and self.headers.get("Authorization") != owner.token:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                body = json.dumps({"AccessKeyId": owner.keys.access_key, "SecretAccessKey": owner.keys.secret_key,
                                   "Token": owner.keys.session_token, "Expiration": expiry}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__(Handler, address)


class Imds(_Server):
    """EC2's instance metadata service, version 2 only: a PUT for a session token, then the role's
    name and its credentials, each GET refused without that token (as IMDSv2 is when v1 is off)."""

    ROLE = "wove-job-role"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.token = secrets.token_hex(16)
        self.requests: List[Tuple[str, str, bool]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                owner.requests.append(("PUT", self.path, False))
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._answer(200, owner.token.encode())
                self._answer(400)

            def do_GET(self) -> None:
                tokened = self.headers.get("X-aws-ec2-metadata-token") == owner.token
                owner.requests.append(("GET", self.path, tokened))
                if not tokened:
                    return self._answer(401)
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self._answer(200, owner.ROLE.encode())
                if self.path == base + owner.ROLE:
                    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                    return self._answer(200, json.dumps({
                        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": owner.keys.access_key,
                        "SecretAccessKey": owner.keys.secret_key, "Token": owner.keys.session_token,
                        "Expiration": expiry, "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }).encode())
                self._answer(404)

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__(Handler)


def tls_files(directory: Path) -> Tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    span = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("wove test CA")).issuer_name(name("wove test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(span[0]).not_valid_after(span[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(span[0]).not_valid_after(span[1])
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class WebIdentitySts(_Server):
    """STS's AssumeRoleWithWebIdentity over TLS (clients send it only over https), as IRSA uses
    it: it hands out `keys` to a request whose WebIdentityToken and RoleArn are the expected ones."""

    def __init__(self, keys: Keys, token: str, role_arn: str, directory: Path) -> None:
        import ssl

        self.keys, self.token, self.role_arn = keys, token, role_arn
        self.requests: List[Dict[str, str]] = []
        self.ca, cert, key = tls_files(directory)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                form.update(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                owner.requests.append(form)
                ok = (form.get("Action") == "AssumeRoleWithWebIdentity" and form.get("RoleArn") == owner.role_arn
                      and form.get("WebIdentityToken", "").strip() == owner.token)
                if not ok:
                    body = b"<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"
                    self.send_response(403)
                else:
                    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                    body = (f'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                            f"<AssumeRoleWithWebIdentityResult><Credentials>"
                            f"<AccessKeyId>{owner.keys.access_key}</AccessKeyId>"
                            f"<SecretAccessKey>{owner.keys.secret_key}</SecretAccessKey>"
                            f"<SessionToken>{owner.keys.session_token}</SessionToken>"
                            f"<Expiration>{expiry}</Expiration></Credentials>"
                            f"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>").encode()
                    self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__(Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"


@dataclass
class Fault:
    """An answer given instead of the upstream's to the first `times` GETs (and to HEADs meanwhile,
    without the body: a bucket's HEAD is how a client learns its region)."""
    status: int
    body: bytes = b""
    headers: Dict[str, str] = field(default_factory=dict)
    times: int = 1


def s3_error(code: str, message: str = "", **extra: str) -> bytes:
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            f"{fields}</Error>").encode()


class FaultProxy(_Server):
    """Forwards every request to `upstream` as it came, except object GETs while `fault` lasts.
    With `check_expiry`, it also plays the one rule of S3's that moto does not: a presigned URL
    past its `X-Amz-Date` + `X-Amz-Expires` is answered 403 AccessDenied, "Request has expired"."""

    def __init__(self, upstream: str, fault: Optional[Fault] = None, check_expiry: bool = False) -> None:
        self.fault = fault or Fault(200, times=0)
        self.check_expiry = check_expiry
        self.gets: List[int] = []
        host, port = upstream.removeprefix("http://").split(":")
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if owner.check_expiry and "X-Amz-Expires" in query:
                    signed = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
                    if time.time() > signed + int(query["X-Amz-Expires"]):
                        owner.gets.append(403)
                        answer = s3_error("AccessDenied", "Request has expired")
                        self.send_response(403)
                        self.send_header("Content-Length", str(len(answer)))
                        self.end_headers()
                        self.wfile.write(answer)
                        return
                if self.command in ("GET", "HEAD") and owner.fault.times > 0:
                    if self.command == "GET":
                        owner.fault.times -= 1
                        owner.gets.append(owner.fault.status)
                    self.send_response(owner.fault.status)
                    for k, v in owner.fault.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(owner.fault.body)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(owner.fault.body)
                    return
                if self.command == "GET":
                    owner.gets.append(200)
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__(Handler)


class EndlessObject(_Server):
    """`size` bytes of a repeating pattern, made as they are sent; `announce` says whether the
    answer carries Content-Length (else it is chunked). `sent` counts the body bytes written."""

    CHUNK = 64 * 1024

    def __init__(self, size: int, announce: bool) -> None:
        self.size, self.announce = size, announce
        self.sent = 0
        self.closed_early = threading.Event()
        owner = self
        chunk = bytes(range(256)) * (self.CHUNK // 256)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if owner.announce:
                    self.send_header("Content-Length", str(owner.size))
                    self.send_header("ETag", '"endless"')
                    self.send_header("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT")
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                left = owner.size
                try:
                    while left > 0:
                        piece = chunk[: min(len(chunk), left)]
                        if owner.announce:
                            self.wfile.write(piece)
                        else:
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        owner.sent += len(piece)
                        left -= len(piece)
                    if not owner.announce:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    owner.closed_early.set()

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__(Handler)


def run_and_measure(command: List[str], env: Dict[str, str], timeout: float, cwd: Optional[Path] = None
                    ) -> Tuple[int, bytes, bytes, int, float]:
    """Run a worker; return its exit code, stdout, stderr, peak RSS in KiB and wall seconds.
    The peak is GNU time's %M for the worker alone: a child's own high-water mark (the kernel
    keeps it across exec, so this process's own size must not be what is forked)."""
    started = time.monotonic()
    rss_file = Path(cwd or ".") / f".rss-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: List[bytes] = []
    err: List[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((process.stdout, out), (process.stderr, err))]
    for r in readers:
        r.start()
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise AssertionError(f"the worker did not end within {timeout} s")
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join(timeout=10)
    text = rss_file.read_text().split() if rss_file.exists() else []
    rss_file.unlink(missing_ok=True)
    peak = int(text[-1]) if text and text[-1].isdigit() else 0
    return process.returncode, b"".join(out), b"".join(err), peak, time.monotonic() - started
