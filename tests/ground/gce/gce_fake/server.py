"""HTTP front: routes Compute REST paths, validates both directions, logs calls.

Endpoints besides the Compute API:
  GET  /_ground/calls            {"calls": [{"method": "compute.urlMaps.patch", "status": 200}, ...]}
  POST /_ground/calls/reset
  GET  /_ground/validation       {"requests": n, "responses": n, "failures": [...]}
  GET|POST|DELETE /_ground/faults   inject failures (see README)
  POST /_ground/reset            forget all resources, operations, calls and faults
  GET  /_ground/info             discovery revision/source and settings
"""

from __future__ import annotations

import json
import os
import threading
import traceback
import urllib.parse
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .errors import ApiError, check_error_shape
from .schema import Discovery, ValidationError, load_document
from .store import Store

API_PREFIX = "/compute/v1/"
BATCH_PATHS = ("/batch/compute/v1", "/batch")
MODE = {"insert": "insert", "update": "update", "patch": "patch"}


class Fake:
    """Everything behind the socket, usable in-process too."""

    def __init__(self, disco: Discovery | None = None):
        if disco is None:
            doc, source = load_document()
            disco = Discovery(doc, source)
        self.d = disco
        self.store = Store(disco)
        self.lock = threading.RLock()
        self.calls: list[dict] = []
        self.failures: list[dict] = []
        self.requests_validated = 0
        self.responses_validated = 0
        self.call_log = os.environ.get("GROUND_CALL_LOG")

    # ---------------------------------------------------------------- record
    def record(self, method_id: str, status: int, http_method: str, path: str, agent: str = ""):
        self.calls.append({"method": method_id, "status": status})
        if self.call_log:
            # `agent` (the x-goog-api-client or User-Agent header) tells gcloud's calls from the
            # Rust clients' in tests/install/iam_coverage.py.
            line = json.dumps({"method": method_id, "status": status, "http": http_method, "path": path, "agent": agent})
            with open(self.call_log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    # ------------------------------------------------------------------- api
    def api(self, http_method: str, path: str, query: str, raw_body: bytes, host: str, agent: str = ""):
        """Returns (status, body_dict_or_None)."""
        base = f"http://{host}/compute/v1"
        rel = path[len(API_PREFIX):]
        meth, params = self.d.route(http_method, rel)
        if meth is None:
            status = 405 if self.d.path_exists(rel) else 404
            err = ApiError(status, "notFound" if status == 404 else "methodNotAllowed",
                           f"The requested URL {path} was not found on this server." if status == 404
                           else f"Method {http_method} is not allowed for {path}.")
            body = self._error(err)
            self.record("unknown", status, http_method, path, agent)
            return status, body
        with self.lock:
            try:
                status, body = self._api(meth, params, http_method, query, raw_body, base)
            except ApiError as err:
                status, body = err.code, self._error(err)
            except Exception as exc:  # a bug in the fake: loud, visible
                self.failures.append({"method": meth.id, "where": "exception",
                                      "message": f"{exc!r}", "trace": traceback.format_exc()})
                err = ApiError(500, "backendError", f"cloudgate GCE fake crashed in {meth.id}: {exc!r}")
                status, body = 500, self._error(err)
            self.record(meth.id, status, http_method, path, agent)
        return status, body

    def _api(self, meth, params, http_method, query, raw_body, base):
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        try:
            qv = self.d.check_params(meth, params, q)
        except ValidationError as e:
            raise ApiError(400, "invalid", e.message) from None
        if qv.get("alt", "json") != "json":
            raise ApiError(400, "invalid", f"The fake only serves alt=json, not alt={qv['alt']}.")
        body = None
        if meth.request:
            text = raw_body.decode("utf-8") if raw_body else ""
            if not text.strip():
                if meth.name in ("insert", "update", "patch"):
                    raise ApiError(400, "required", "Required field 'resource' not specified")
                body = {}
            else:
                try:
                    body = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ApiError(400, "parseError", f"Invalid JSON payload received. {e.msg} at line "
                                                      f"{e.lineno} column {e.colno}.") from None
            try:
                body = self.d.validate_request(body, meth.request, meth.id, MODE.get(meth.name, "action"))
            except ValidationError as e:
                raise ApiError(400, "invalid", e.message) from None
            self.requests_validated += 1
        fault = self.store.take_fault(meth.id, "http")
        if fault:
            code = int(fault.get("httpStatus", 503))
            raise ApiError(code, fault.get("reason", "backendError"), fault.get("message", "Injected failure."))
        status, resp, schema = self.store.handle(meth, params, qv, body, base)
        if resp is not None:
            schema = schema or meth.response
            try:
                self.d.validate_response(resp, schema)
                self.responses_validated += 1
            except ValidationError as e:
                self.failures.append({"method": meth.id, "where": "response", "schema": schema,
                                      "location": e.location, "message": e.message})
                raise ApiError(500, "backendError",
                               f"cloudgate GCE fake produced a response that does not match schema {schema}: "
                               f"{e.message}") from None
        return status, resp

    def _error(self, err: ApiError) -> dict:
        body = err.body()
        complaint = check_error_shape(body)
        if complaint:
            self.failures.append({"where": "error-shape", "message": complaint})
        else:
            self.responses_validated += 1
        return body

    # ----------------------------------------------------------------- batch
    def batch(self, content_type: str, raw: bytes, host: str) -> tuple[int, str, bytes]:
        """multipart/mixed batch, as apitools (gcloud) and googleapiclient send it."""
        msg = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        if not msg.is_multipart():
            err = ApiError(400, "invalid", "Batch requests must be multipart/mixed.")
            return 400, "application/json; charset=UTF-8", json.dumps(self._error(err)).encode()
        boundary = f"batch_{uuid.uuid4().hex}"
        out = []
        for part in msg.iter_parts():
            cid = part.get("Content-ID", "")
            payload = part.get_payload(decode=True) or b""
            head, _, body = payload.partition(b"\r\n\r\n")
            if not _ and b"\n\n" in payload:
                head, _, body = payload.partition(b"\n\n")
            lines = head.decode("utf-8", "replace").splitlines()
            verb, target, *_rest = lines[0].split(" ")
            parsed = urllib.parse.urlsplit(target)
            if parsed.path.startswith(API_PREFIX):
                status, resp = self.api(verb, parsed.path, parsed.query, body, host)
            else:
                err = ApiError(404, "notFound", f"The requested URL {parsed.path} was not found on this server.")
                status, resp = 404, self._error(err)
                self.record("unknown", 404, verb, parsed.path)
            text = json.dumps(resp) if resp is not None else ""
            rid = cid.strip()
            if rid.startswith("<") and rid.endswith(">"):
                rid = f"<response-{rid[1:-1]}>"
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {rid}\r\n\r\n"
                f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: application/json; charset=UTF-8\r\n"
                f"Content-Length: {len(text.encode())}\r\n\r\n{text}\r\n"
            )
        out.append(f"--{boundary}--\r\n")
        return 200, f"multipart/mixed; boundary={boundary}", "".join(out).encode()

    # ------------------------------------------------------------ _ground/*
    def ground(self, http_method: str, path: str, raw: bytes):
        with self.lock:
            if path == "/_ground/calls" and http_method == "GET":
                return 200, {"calls": list(self.calls)}
            if path == "/_ground/calls/reset" and http_method == "POST":
                self.calls.clear()
                return 200, {"calls": []}
            if path == "/_ground/validation" and http_method == "GET":
                return 200, {"requests": self.requests_validated, "responses": self.responses_validated,
                             "failures": list(self.failures)}
            if path == "/_ground/reset" and http_method == "POST":
                self.store.reset()
                self.calls.clear()
                self.failures.clear()
                return 200, {"reset": True}
            if path == "/_ground/faults":
                if http_method == "GET":
                    return 200, {"faults": self.store.faults}
                if http_method == "DELETE":
                    self.store.faults.clear()
                    return 200, {"faults": []}
                if http_method == "POST":
                    f = json.loads(raw or b"{}")
                    if "method" not in f:
                        return 400, {"error": "fault needs 'method' (a discovery method id or '*')"}
                    f.setdefault("mode", "operation" if "operationError" in f else "http")
                    f.setdefault("count", 1)
                    self.store.faults.append(f)
                    return 200, {"faults": self.store.faults}
            if path == "/_ground/info" and http_method == "GET":
                cfg = self.store.cfg
                return 200, {"discovery": {"revision": self.d.revision, "source": self.d.source},
                             "opSteps": cfg.op_steps, "requireFingerprint": cfg.require_fingerprint,
                             "opAutocompleteSeconds": cfg.op_autocomplete}
        return 404, {"error": f"no such ground endpoint {http_method} {path}"}


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    fake: Fake = None  # set by serve()
    server_version = "cloudgate-gce-fake/1"

    def log_message(self, fmt, *args):  # one line per request on stderr
        if os.environ.get("GCE_FAKE_QUIET") != "1":
            super().log_message(fmt, *args)

    def _read(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body, content_type="application/json; charset=UTF-8"):
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif body is None:
            data = b""
        else:
            data = json.dumps(body, indent=1).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)

    def _dispatch(self):
        raw = self._read()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        if path.startswith("/_ground/"):
            status, body = self.fake.ground(self.command, path, raw)
            return self._send(status, body)
        if path in BATCH_PATHS and self.command == "POST":
            status, ctype, data = self.fake.batch(self.headers.get("Content-Type", ""), raw, host)
            return self._send(status, data, ctype)
        if path.startswith(API_PREFIX):
            agent = " ".join(filter(None, [self.headers.get("x-goog-api-client"), self.headers.get("User-Agent")]))
            status, body = self.fake.api(self.command, path, url.query, raw, host, agent)
            return self._send(status, body)
        err = ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")
        return self._send(404, err.body())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(host: str, port: int, fake: Fake | None = None) -> Server:
    fake = fake or Fake()
    handler = type("BoundHandler", (Handler,), {"fake": fake})
    return Server((host, port), handler)
