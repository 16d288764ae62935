"""Records every AWS API call the ground's moto server answers, as (service, action, status).

Tests use it to count cloud API calls (e.g. "a weight change is exactly one UpdateRule").

* service: the botocore service name (``vpc-lattice``, ``elbv2``, ``ec2``, ``acm``, ``sts``,
  ``resourcegroupstaggingapi`` ...), derived from the SigV4 credential scope's signing name (and,
  for ``elasticloadbalancing``, the API ``Version``), falling back to the X-Amz-Target prefix.
* action: the operation name from ``X-Amz-Target`` (JSON protocols such as ACM), the ``Action``
  query/form field (query protocols such as ELBv2, EC2, STS), or for REST protocols (vpc-lattice)
  the operation whose method + requestUri in the botocore model matches the request.

Endpoints served by the middleware (never recorded):
  GET  /_ground/calls[?service=S&action=A]  -> {"calls": [{"service","action","status",...}]}
  POST /_ground/calls/reset                 -> {"cleared": N}
  GET  /_ground/health                      -> {"ok": true, ...}
  POST /_ground/lattice/target-health       -> force a Lattice target's ListTargets status
Each call is also appended as a JSON line to $GROUND_CALL_LOG when that is set.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, quote, urlsplit

import botocore.session

# SigV4 signing name -> botocore service name, where they differ.
_SIGNING_TO_SERVICE = {
    "elasticloadbalancing": "elbv2",  # refined by the API Version below
    "tagging": "resourcegroupstaggingapi",
    "monitoring": "cloudwatch",
    "email": "ses",
    "states": "stepfunctions",
    "execute-api": "apigateway",
}
_ELB_VERSIONS = {"2015-12-01": "elbv2", "2012-06-01": "elb"}
# X-Amz-Target prefix -> botocore service name (used when the request is unsigned).
_TARGET_PREFIX_TO_SERVICE = {
    "CertificateManager": "acm",
    "ResourceGroupsTaggingAPI_20170126": "resourcegroupstaggingapi",
    "AWSSecurityTokenServiceV20110615": "sts",
}

_session_lock = threading.Lock()
_session: botocore.session.Session | None = None


def _botocore_session() -> botocore.session.Session:
    global _session
    with _session_lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session


@functools.lru_cache(maxsize=None)
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern[str], tuple[str, ...], str], ...]:
    """(method, uri regex, required query keys, operation) for a REST service, most specific first."""
    try:
        model = _botocore_session().get_service_model(service)
    except Exception:  # noqa: BLE001 - unknown service: no REST routes
        return ()
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        required_query = tuple(q.split("=")[0] for q in query.split("&") if q)
        parts = []
        for seg in path.split("/"):
            m = re.fullmatch(r"\{([^}]+?)(\+?)\}", seg)
            if m:
                parts.append("(.+)" if m.group(2) else "([^/]+)")
            else:
                parts.append(re.escape(seg))
        regex = "/".join(parts)
        if path.endswith("/") and path != "/":
            regex = regex.rstrip("/") + "/?"
        literal_len = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((literal_len, len(required_query), http["method"], re.compile(f"^{regex}$"), required_query, name))
    routes.sort(key=lambda r: (-r[0], -r[1]))
    return tuple((m, rx, q, n) for _, _, m, rx, q, n in routes)


def _protocol(service: str) -> str:
    try:
        return _botocore_session().get_service_model(service).protocol
    except Exception:  # noqa: BLE001
        return ""


class CallLog:
    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._path = path

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(entry)
            if self._path:
                with open(self._path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, sort_keys=True) + "\n")

    def snapshot(self, service: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            calls = list(self._calls)
        return [c for c in calls if (service is None or c["service"] == service) and (action is None or c["action"] == action)]

    def reset(self) -> int:
        with self._lock:
            n = len(self._calls)
            self._calls.clear()
            return n


def classify(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
    """Returns (service, action) for one request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    qs = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    form: dict[str, list[str]] = {}
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") and body:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}

    def field(name: str) -> str | None:
        for source in (form, qs):
            if source.get(name):
                return source[name][0]
        return None

    service = ""
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", auth)
    if m:
        signing = m.group(1).lower()
        service = _SIGNING_TO_SERVICE.get(signing, signing)
        if signing == "elasticloadbalancing":
            service = _ELB_VERSIONS.get(field("Version") or "", "elbv2")
    if not service and target:
        service = _TARGET_PREFIX_TO_SERVICE.get(target.split(".")[0], target.split(".")[0].lower())

    if target:
        return service or "unknown", target.split(".")[-1]
    action = field("Action")
    if action:
        return service or "unknown", action
    if service and _protocol(service) in ("rest-json", "rest-xml"):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))
        path = urlsplit(raw).path or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        for route_method, regex, required_query, name in _rest_routes(service):
            if route_method == method and regex.match(path) and all(k in qs for k in required_query):
                return service, name
    return service or "unknown", "Unknown"


Handler = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json_response(start_response: Callable[..., Any], status: str, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class CallLogMiddleware:
    """WSGI middleware around moto's DomainDispatcherApplication."""

    def __init__(self, app: Handler, log: CallLog, info: dict[str, Any] | None = None,
                 control: dict[str, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        self.app = app
        self.log = log
        self.info = info or {}
        self.control = control or {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_ground/"):
            return self._ground(environ, start_response, path)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self.app(environ, start_response)

        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, action = classify(environ, body)

        captured: dict[str, int] = {}

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            result = self.app(environ, _start)
        except Exception:
            self.log.record({"service": service, "action": action, "status": 500, "method": environ.get("REQUEST_METHOD"),
                             "path": path, "ts": time.time()})
            raise
        # The User-Agent says who called: cloudgate's controller sends `app/cloudgate-controller`,
        # which is how tests/install/iam_coverage.py tells its calls from the tests' own.
        self.log.record({"service": service, "action": action, "status": captured.get("status", 0),
                         "method": environ.get("REQUEST_METHOD"), "path": path, "ts": time.time(),
                         "user_agent": environ.get("HTTP_USER_AGENT", "")})
        return result

    def _ground(self, environ: dict[str, Any], start_response: Callable[..., Any], path: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_ground/health" and method == "GET":
            return _json_response(start_response, "200 OK", {"ok": True, **self.info})
        if path == "/_ground/calls" and method == "GET":
            qs = parse_qs(environ.get("QUERY_STRING", ""))
            calls = self.log.snapshot((qs.get("service") or [None])[0], (qs.get("action") or [None])[0])
            return _json_response(start_response, "200 OK", {"calls": calls})
        if path == "/_ground/calls/reset" and method == "POST":
            return _json_response(start_response, "200 OK", {"cleared": self.log.reset()})
        handler = self.control.get(path)
        if handler and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                payload = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
                return _json_response(start_response, "200 OK", handler(payload))
            except (ValueError, KeyError, TypeError) as err:
                return _json_response(start_response, "400 Bad Request", {"error": str(err)})
            except Exception as err:  # noqa: BLE001 - report, do not kill the server
                return _json_response(start_response, "404 Not Found", {"error": getattr(err, "message", str(err))})
        return _json_response(start_response, "404 Not Found", {"error": f"no such ground endpoint: {method} {path}"})


def default_log() -> CallLog:
    return CallLog(os.environ.get("GROUND_CALL_LOG") or None)
