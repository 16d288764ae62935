"""What a call is (its operation name) and what an injected fault looks like, per protocol.

Errors are built the way each service sends them, so clients classify them with their own
rules (the AWS SDKs' throttling list — Throttling, RequestLimitExceeded, ThrottlingException,
... — and their 500/502/503/504 transient statuses; Google's 429 / 5xx):

- ELBv2 (AWS query protocol): HTTP 400 ``<ErrorResponse><Error><Code>Throttling``; 5xx is
  503 ``ServiceUnavailable``.
- EC2 (its own query dialect): HTTP 503 ``<Response><Errors><Error><Code>RequestLimitExceeded``;
  5xx is 500 ``InternalError``.
- ACM (awsJson1_1, ``X-Amz-Target``): 400 ``{"__type": "ThrottlingException"}``; 5xx 500
  ``InternalFailure``.
- VPC Lattice (restJson1): 429 with ``x-amzn-ErrorType: ThrottlingException``; 5xx 500
  ``InternalServerException`` (both as the Lattice API model declares them).
- GCE: 429 ``rateLimitExceeded`` / 503 ``backendError`` in Google's JSON error envelope.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

AWS = "aws"
GCE = "gce"


@dataclass
class Request:
    flavour: str  # AWS or GCE
    method: str
    target: str  # path + query, as received
    headers: dict[str, str]  # lower-cased names
    body: bytes


def aws_service(req: Request) -> str:
    """The signing name from the SigV4 credential scope (``.../us-east-1/ec2/aws4_request``)."""
    m = re.search(r"Credential=[^/,]+/\d{8}/[^/]+/([^/,]+)/aws4_request", req.headers.get("authorization", ""))
    return m.group(1) if m else "unknown"


def aws_protocol(req: Request) -> str:
    if "x-amz-target" in req.headers:
        return "json"
    if b"Action=" in req.body or "Action=" in (urlsplit(req.target).query or ""):
        return "ec2" if aws_service(req) == "ec2" else "query"
    return "rest-json"


_ID = re.compile(r"^(arn:|[a-z]+-[0-9a-z]{8,}$|\d+$)")


def _normalise_rest_path(path: str) -> str:
    """Lattice paths with ids/ARNs replaced: ``/services/{id}/listeners/{id}``."""
    return "/".join("{id}" if _ID.match(unquote(seg)) else seg for seg in path.split("/"))


# GCE path segments that are followed by a name; "global" stands alone; anything else after a
# name is a collection (followed by a name) or, at the end, a custom method.
def _normalise_gce_path(path: str) -> str:
    segs = path.split("/")
    try:
        i = segs.index("v1") + 1
    except ValueError:
        return path
    out = segs[:i]
    expect_name = False
    for seg in segs[i:]:
        if expect_name:
            out.append("{" + (out[-1].rstrip("s") or "name") + "}")
            expect_name = False
        else:
            out.append(seg)
            expect_name = seg != "global"
    return "/".join(out)


def operation(req: Request) -> str:
    """A stable operation name for counting: ``ec2:CreateSecurityGroup``,
    ``acm:ImportCertificate``, ``vpc-lattice:POST /services/{id}/listeners``,
    ``gce:POST /compute/v1/projects/{project}/global/urlMaps``."""
    if req.flavour == GCE:
        return f"gce:{req.method} {_normalise_gce_path(urlsplit(req.target).path)}"
    service = aws_service(req)
    proto = aws_protocol(req)
    if proto == "json":
        return f"{service}:{req.headers['x-amz-target'].rsplit('.', 1)[-1]}"
    if proto in ("query", "ec2"):
        params = parse_qs(req.body.decode("utf-8", "replace")) | parse_qs(urlsplit(req.target).query)
        return f"{service}:{params.get('Action', ['?'])[0]}"
    return f"{service}:{req.method} {_normalise_rest_path(urlsplit(req.target).path)}"


def _aws_error(req: Request, fault: str) -> tuple[int, dict[str, str], bytes]:
    rid = str(uuid.uuid4())
    proto = aws_protocol(req)
    throttle = fault == "throttle"
    if proto == "ec2":
        code, msg, status = ("RequestLimitExceeded", "Request limit exceeded.", 503) if throttle else ("InternalError", "An internal error has occurred", 500)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{msg}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
        return status, {"Content-Type": "text/xml;charset=UTF-8", "x-amzn-RequestId": rid}, body.encode()
    if proto == "query":
        code, msg, status, kind = ("Throttling", "Rate exceeded", 400, "Sender") if throttle else ("ServiceUnavailable", "Service is unavailable", 503, "Receiver")
        body = (f'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>{kind}</Type>'
                f"<Code>{code}</Code><Message>{msg}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>")
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, body.encode()
    if proto == "json":
        code, status = ("ThrottlingException", 400) if throttle else ("InternalFailure", 500)
        body = json.dumps({"__type": code, "message": "Rate exceeded" if throttle else "Internal failure"})
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": rid}, body.encode()
    code, status = ("ThrottlingException", 429) if throttle else ("InternalServerException", 500)
    body = json.dumps({"message": "Rate exceeded" if throttle else "Internal server error"})
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": rid}
    if throttle:
        headers["Retry-After"] = "1"
    return status, headers, body.encode()


def _gce_error(fault: str) -> tuple[int, dict[str, str], bytes]:
    if fault == "throttle":
        code, status, reason, domain, msg = 429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"
    else:
        code, status, reason, domain, msg = 503, "UNAVAILABLE", "backendError", "global", "Backend Error"
    body = {"error": {"code": code, "message": msg, "errors": [{"message": msg, "domain": domain, "reason": reason}], "status": status}}
    return code, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()


def error_response(req: Request, fault: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of an injected ``throttle`` or ``error5xx``."""
    return _gce_error(fault) if req.flavour == GCE else _aws_error(req, fault)
