"""A fault-injecting reverse proxy for the test ground's cloud backends.

One process, one listening port per upstream (``--upstream aws=http://127.0.0.1:4566``). Every
request is counted by operation and either forwarded or answered with an injected fault:

- ``throttle``: the cloud's own "slow down" error, in the protocol the client speaks (see
  ``faults.py``); the request never reaches the backend, as with a real rate limiter.
- ``error5xx``: the cloud's own internal/unavailable error; not forwarded.
- ``timeout``: forwarded (so it takes effect on the backend), then the answer is held for
  ``hold_seconds`` and the connection closed without one: the client's attempt timeout fires
  on a call that actually happened, the case that makes naive creates duplicate.
- ``drop``: the connection is reset, before forwarding or after (half each): the client cannot
  tell whether the call happened.

Control and figures, on every port (never faulted, never counted):
``GET/POST /_faults/config`` (rates, hold_seconds, seed, and optionally ``operations``: only
these get faults, ``budget``: at most this many), ``GET /_faults/stats``,
``POST /_faults/reset`` (zero the figures), ``GET /_faults/health``.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
from collections import Counter, defaultdict
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import faults

KINDS = ("throttle", "error5xx", "timeout", "drop")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Config:
    """Fault rates (probability per call, summed must stay <= 1) and knobs; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rates = {k: 0.0 for k in KINDS}
        self.hold_seconds = 30.0
        self.seed: int | None = None
        # Only these operations get faults (None: all), and at most `budget` of them (None: no
        # limit): "exactly one lost answer on CreateListener".
        self.operations: list[str] | None = None
        self.budget: int | None = None
        self._rng = random.Random()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"rates": dict(self.rates), "hold_seconds": self.hold_seconds, "seed": self.seed,
                    "operations": self.operations, "budget": self.budget}

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Partial update; raises ValueError on anything malformed, changing nothing."""
        if not isinstance(body, dict):
            raise ValueError("config must be a JSON object")
        unknown = set(body) - {"rates", "hold_seconds", "seed", "operations", "budget"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        rates = body.get("rates", {})
        if not isinstance(rates, dict) or set(rates) - set(KINDS):
            raise ValueError(f"rates must be an object with keys among {list(KINDS)}")
        for k, v in rates.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise ValueError(f"rate {k} must be a number in [0, 1]")
        hold = body.get("hold_seconds")
        if hold is not None and (not isinstance(hold, (int, float)) or isinstance(hold, bool) or hold < 0):
            raise ValueError("hold_seconds must be a non-negative number")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError("seed must be an integer")
        ops = body.get("operations")
        if ops is not None and (not isinstance(ops, list) or not all(isinstance(o, str) for o in ops)):
            raise ValueError("operations must be a list of operation names, or null for all")
        budget = body.get("budget")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
            raise ValueError("budget must be a non-negative integer, or null for no limit")
        with self._lock:
            merged = {**self.rates, **{k: float(v) for k, v in rates.items()}}
            if sum(merged.values()) > 1.0 + 1e-9:
                raise ValueError("rates sum to more than 1")
            self.rates = merged
            if hold is not None:
                self.hold_seconds = float(hold)
            if "seed" in body:
                self.seed = seed
                self._rng = random.Random(seed)
            if "operations" in body:
                self.operations = ops
            if "budget" in body:
                self.budget = budget
        return self.snapshot()

    def draw(self, op: str) -> str | None:
        """The fault for the next call of `op`, or None to forward it untouched."""
        with self._lock:
            if self.operations is not None and op not in self.operations or self.budget == 0:
                return None
            r = self._rng.random()
            for k in KINDS:
                if r < self.rates[k]:
                    if self.budget is not None:
                        self.budget -= 1
                    return k
                r -= self.rates[k]
            return None

    def coin(self) -> bool:
        with self._lock:
            return self._rng.random() < 0.5


class Stats:
    """Calls by upstream and operation, faults by kind and by operation; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.calls: dict[str, Counter[str]] = defaultdict(Counter)
        self.faults: Counter[str] = Counter()
        self.faults_by_op: dict[str, Counter[str]] = defaultdict(Counter)

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def record(self, upstream: str, op: str, fault: str | None) -> None:
        with self._lock:
            self.calls[upstream][op] += 1
            if fault:
                self.faults[fault] += 1
                self.faults_by_op[op][fault] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": {u: dict(sorted(c.items())) for u, c in sorted(self.calls.items())},
                "total": sum(sum(c.values()) for c in self.calls.values()),
                "faults": {k: self.faults.get(k, 0) for k in KINDS},
                "faults_by_operation": {op: dict(c) for op, c in sorted(self.faults_by_op.items())},
            }


class Handler(BaseHTTPRequestHandler):
    # Keep-alive like the real endpoints: SDK clients pool connections.
    protocol_version = "HTTP/1.1"
    server: "ProxyServer"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms
        # to every keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # one line per call would drown the ground's logs

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, indent=1).encode(), {"Content-Type": "application/json"})

    def _control(self, body: bytes) -> None:
        path = urlsplit(self.path).path
        srv = self.server
        if path == "/_faults/health":
            return self._json(200, {"ok": True, "upstream": srv.label})
        if path == "/_faults/config" and self.command == "GET":
            return self._json(200, srv.config.snapshot())
        if path == "/_faults/config" and self.command in ("POST", "PUT"):
            try:
                return self._json(200, srv.config.update(json.loads(body or b"{}")))
            except (ValueError, json.JSONDecodeError) as e:
                return self._json(400, {"error": str(e)})
        if path == "/_faults/stats" and self.command == "GET":
            return self._json(200, srv.stats.snapshot())
        if path == "/_faults/reset" and self.command == "POST":
            srv.stats.reset()
            return self._json(200, srv.stats.snapshot())
        return self._json(404, {"error": f"no control endpoint {self.command} {path}"})

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        up = self.server.upstream
        conn = HTTPConnection(up.hostname, up.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}], resp.read()
        finally:
            conn.close()

    def _reset_connection(self) -> None:
        """Closes with RST (SO_LINGER 0): what a dropped connection looks like to the client."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _handle(self) -> None:
        body = self._read_body()
        path = urlsplit(self.path).path
        if path.startswith("/_faults/"):
            return self._control(body)
        srv = self.server
        # The ground's own endpoints (call logs, health) pass untouched and uncounted.
        if path.startswith("/_ground/"):
            status, headers, data = self._forward(body)
            return self._send(status, data, dict(headers))
        req = faults.Request(srv.flavour, self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        op = faults.operation(req)
        fault = srv.config.draw(op)
        srv.stats.record(srv.label, op, fault)
        if fault in ("throttle", "error5xx"):
            status, headers, data = faults.error_response(req, fault)
            return self._send(status, data, headers)
        if fault == "drop":
            if srv.config.coin():
                self._forward(body)
            return self._reset_connection()
        status, headers, data = self._forward(body)
        if fault == "timeout":
            srv.stopping.wait(srv.config.snapshot()["hold_seconds"])
            return self._reset_connection()
        self._send(status, data, dict(headers))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle  # noqa: N815


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, label: str, upstream: str, flavour: str, config: Config, stats: Stats,
                 stopping: threading.Event) -> None:
        super().__init__((host, port), Handler)
        self.label = label
        self.upstream = urlsplit(upstream)
        self.flavour = flavour
        self.config = config
        self.stats = stats
        self.stopping = stopping
