"""Fixtures: a recording upstream (stdlib HTTP server) and the fault proxy in front of it, run
as `python -m faultproxy` exactly as up.sh runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, *args: object) -> None:
        return

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, body))
        out = json.dumps({"method": self.command, "path": self.path, "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any  # noqa: N815


class Proxy:
    def __init__(self, ports: dict[str, int]) -> None:
        self.aws = f"http://127.0.0.1:{ports['aws']}"
        self.gce = f"http://127.0.0.1:{ports['gce']}"

    def control(self, path: str, payload: dict | None = None, method: str | None = None) -> tuple[int, dict]:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.aws + path, data=data, method=method or ("POST" if data is not None else "GET"))
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def configure(self, **rates: float) -> None:
        hold = rates.pop("hold_seconds", None)
        body: dict = {"rates": {k: 0.0 for k in ("throttle", "error5xx", "timeout", "drop")} | rates, "seed": 7}
        if hold is not None:
            body["hold_seconds"] = hold
        status, out = self.control("/_faults/config", body)
        assert status == 200, out


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    srv = Upstream()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


@pytest.fixture()
def proxy(upstream: Upstream, tmp_path: Path) -> Iterator[Proxy]:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultproxy", "--upstream", f"aws={upstream.url}", "--upstream", f"gce={upstream.url}",
         "--port-file", str(tmp_path / "ports")],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    ports = json.loads(line)["ready"]
    yield Proxy(ports)
    proc.terminate()
    assert proc.wait(timeout=10) == 0
