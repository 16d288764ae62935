"""Fixtures: an AWS endpoint (AWS_ENDPOINT_URL, or a cloudgate-moto server started here) and
boto3 clients pointed at it. Works unchanged against LocalStack or any other endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

GROUND_AWS = Path(__file__).resolve().parents[1]
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
START_TIMEOUT_S = 60


class Endpoint:
    def __init__(self, url: str, call_log_file: str | None) -> None:
        self.url = url.rstrip("/")
        self.call_log_file = call_log_file
        self.is_ground = self._probe()

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_ground/health", timeout=5) as resp:
                return json.load(resp).get("lattice_ext") is True
        except (urllib.error.URLError, ValueError, OSError):
            return False

    def ground(self, path: str, method: str = "GET", payload: dict | None = None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)


def _start_server(tmp: Path) -> tuple[subprocess.Popen[str], str, str]:
    call_log = str(tmp / "calls.jsonl")
    env = dict(os.environ, GROUND_CALL_LOG=call_log,
               PYTHONPATH=os.pathsep.join([str(GROUND_AWS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log = open(tmp / "moto.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudgate_moto.server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=str(GROUND_AWS),
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints exactly one ready line, then nothing
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"cloudgate-moto did not start: {line!r}; see {tmp / 'moto.log'}")
    url = line.strip().split()[-1]
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_ground/health", timeout=2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, url, call_log


@pytest.fixture(scope="session")
def endpoint() -> Iterator[Endpoint]:
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(var, value)
    url = os.environ.get("AWS_ENDPOINT_URL")
    if url:
        yield Endpoint(url, None)
        return
    with tempfile.TemporaryDirectory(prefix="cloudgate-aws-") as tmp:
        proc, url, call_log = _start_server(Path(tmp))
        try:
            yield Endpoint(url, call_log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _client(endpoint: Endpoint, service: str, validate: bool = True):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=endpoint.url,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=Config(parameter_validation=validate, retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="session")
def lattice(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return _client(endpoint, "vpc-lattice")


@pytest.fixture(scope="session")
def lattice_raw(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    """No client-side validation: lets a test send what the Rust SDK would send unchecked."""
    return _client(endpoint, "vpc-lattice", validate=False)


@pytest.fixture(scope="session")
def elbv2(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return _client(endpoint, "elbv2")


@pytest.fixture(scope="session")
def ec2(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return _client(endpoint, "ec2")


@pytest.fixture(scope="session")
def acm(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return _client(endpoint, "acm")


@pytest.fixture(scope="session")
def tagging(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    return _client(endpoint, "resourcegroupstaggingapi")


@pytest.fixture
def ground(endpoint: Endpoint) -> Endpoint:
    if not endpoint.is_ground:
        pytest.skip("endpoint is not the cloudgate moto ground (no /_ground API)")
    return endpoint


@pytest.fixture
def uniq() -> str:
    """A short suffix that keeps names unique across tests (state is shared, LocalStack has no reset)."""
    return uuid.uuid4().hex[:8]
