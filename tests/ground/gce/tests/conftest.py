"""Fixtures: a running fake (GCE_ENDPOINT, or one started here) and a small
REST client that speaks to it exactly like a controller would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # tests/ground/gce


def _wait_port(port_file: Path, proc: subprocess.Popen, timeout=30.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gce_fake exited with {proc.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text())
            try:
                if requests.get(f"http://127.0.0.1:{port}/_ground/info", timeout=2).ok:
                    return port
            except requests.ConnectionError:
                pass
        time.sleep(0.1)
    raise RuntimeError("gce_fake did not become ready")


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
    """{'endpoint': ..., 'own': bool, 'call_log': path-or-None}"""
    endpoint = os.environ.get("GCE_ENDPOINT")
    if endpoint:
        yield {"endpoint": endpoint.rstrip("/"), "own": False, "call_log": None}
        return
    d = tmp_path_factory.mktemp("gce")
    port_file, log, call_log = d / "port", d / "gce.log", d / "calls.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GROUND_CALL_LOG=str(call_log), GCE_FAKE_QUIET="1")
    with open(log, "w") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gce_fake", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)],
            env=env, stdout=logf, stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_port(port_file, proc)
        yield {"endpoint": f"http://127.0.0.1:{port}", "own": True, "call_log": call_log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ApiFailure(AssertionError):
    pass


class Gce:
    """Thin REST client; one throwaway project per test keeps tests apart."""

    def __init__(self, endpoint: str, project: str, region="us-central1", zone="us-central1-a"):
        self.endpoint = endpoint
        self.project = project
        self.region = region
        self.zone = zone
        self.s = requests.Session()
        self.polls = 0

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return f"{self.endpoint}{path}"
        return f"{self.endpoint}/compute/v1/projects/{self.project}/{path}"

    def call(self, method: str, path: str, body=None, params=None, raw: str | None = None):
        kw = {"params": params, "timeout": 30}
        if raw is not None:
            kw["data"] = raw
            kw["headers"] = {"Content-Type": "application/json"}
        elif body is not None:
            kw["json"] = body
        return self.s.request(method, self.url(path), **kw)

    def ok(self, method, path, body=None, params=None) -> dict:
        r = self.call(method, path, body, params)
        if r.status_code != 200:
            raise ApiFailure(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def get(self, path, params=None):
        return self.ok("GET", path, params=params)

    def wait(self, op: dict, via="get", max_polls=50) -> dict:
        seen = [op["status"]]
        n = 0
        while op["status"] != "DONE":
            n += 1
            assert n <= max_polls, f"operation never finished: {op}"
            if via == "wait":
                op = self.ok("POST", op["selfLink"] + "/wait")
            else:
                op = self.ok("GET", op["selfLink"])
            seen.append(op["status"])
            self.polls += 1
        op["_seen"] = seen
        return op

    def done(self, method, path, body=None, params=None) -> dict:
        """Runs a mutation and polls its operation; fails on operation errors."""
        op = self.wait(self.ok(method, path, body, params))
        if "error" in op:
            raise ApiFailure(f"{method} {path}: operation failed: {op['error']}")
        return op

    def insert(self, coll_path: str, body: dict) -> dict:
        op = self.done("POST", coll_path, body)
        return self.get(op["targetLink"])


@pytest.fixture(scope="session")
def op_steps(fake):
    return requests.get(f"{fake['endpoint']}/_ground/info", timeout=10).json()["opSteps"]


@pytest.fixture
def gce(fake, request):
    project = f"t-{uuid.uuid4().hex[:12]}"
    return Gce(fake["endpoint"], project)


def assert_google_error(r, code: int, reason: str, status: str | None = None, contains: str | None = None):
    assert r.status_code == code, f"expected {code}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    if status:
        assert err["status"] == status, err
    assert err["errors"][0]["reason"] == reason, err
    assert err["errors"][0]["domain"] == "global"
    assert err["errors"][0]["message"] == err["message"]
    if contains:
        assert contains in err["message"], err["message"]
    return err


def neg_body(name, port=8080):
    return {"name": name, "networkEndpointType": "GCE_VM_IP_PORT", "defaultPort": port,
            "network": "global/networks/default"}


def hc_body(name):
    return {"name": name, "type": "HTTP", "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"}}


@pytest.fixture(scope="session")
def tls_pair():
    """A self-signed certificate for www.example.com, as PEM (cert, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode(),
    )
