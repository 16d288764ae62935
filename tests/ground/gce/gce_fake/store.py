"""Resource store and the Compute semantics a load-balancer controller meets.

Stored resources keep references as BASE + "/projects/..." with a placeholder
BASE; responses substitute the URL root the client used, so selfLinks can be
followed whatever host/port the fake listens on.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import os
import re
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from . import filters
from .errors import (
    ApiError,
    already_exists,
    fingerprint_mismatch,
    in_use,
    invalid_field,
    not_found,
    not_ready,
)
from .schema import Discovery, Method

BASE = "@@BASE@@"
NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
EMPTY_LABEL_FINGERPRINT = "42WmSpB8rSM="
PACIFIC = timezone(timedelta(hours=-7))

REGIONS = {
    "us-central1": ["a", "b", "c", "f"],
    "us-east1": ["b", "c", "d"],
    "us-east4": ["a", "b", "c"],
    "us-west1": ["a", "b", "c"],
    "europe-west1": ["b", "c", "d"],
    "europe-west4": ["a", "b", "c"],
    "asia-east1": ["a", "b", "c"],
    "asia-northeast1": ["a", "b", "c"],
}
ZONES = {f"{r}-{z}": r for r, zs in REGIONS.items() for z in zs}
DEFAULT_SUBNETS = {
    "us-central1": "10.128.0.0/20",
    "europe-west1": "10.132.0.0/20",
    "us-west1": "10.138.0.0/20",
    "asia-east1": "10.140.0.0/20",
    "us-east1": "10.142.0.0/20",
    "asia-northeast1": "10.146.0.0/20",
    "us-east4": "10.150.0.0/20",
    "europe-west4": "10.164.0.0/20",
}


@dataclass
class Kind:
    coll: str  # URL segment, e.g. "urlMaps"
    schema: str
    singular: str  # as GCE writes it in messages, e.g. "url_map"
    resources: dict  # scope type -> discovery resource name
    fingerprinted: bool = False
    labelled: bool = False


KINDS = [
    Kind("addresses", "Address", "address", {"global": "globalAddresses", "region": "addresses"}, labelled=True),
    Kind("urlMaps", "UrlMap", "url_map", {"global": "urlMaps", "region": "regionUrlMaps"}, fingerprinted=True),
    Kind("backendServices", "BackendService", "backend_service",
         {"global": "backendServices", "region": "regionBackendServices"}, fingerprinted=True),
    Kind("healthChecks", "HealthCheck", "health_check", {"global": "healthChecks", "region": "regionHealthChecks"}),
    Kind("targetHttpProxies", "TargetHttpProxy", "target_http_proxy",
         {"global": "targetHttpProxies", "region": "regionTargetHttpProxies"}, fingerprinted=True),
    Kind("targetHttpsProxies", "TargetHttpsProxy", "target_https_proxy",
         {"global": "targetHttpsProxies", "region": "regionTargetHttpsProxies"}, fingerprinted=True),
    Kind("sslCertificates", "SslCertificate", "ssl_certificate",
         {"global": "sslCertificates", "region": "regionSslCertificates"}),
    Kind("forwardingRules", "ForwardingRule", "forwarding_rule",
         {"global": "globalForwardingRules", "region": "forwardingRules"}, fingerprinted=True, labelled=True),
    Kind("networkEndpointGroups", "NetworkEndpointGroup", "network_endpoint_group", {"zone": "networkEndpointGroups"}),
    Kind("firewalls", "Firewall", "firewall", {"global": "firewalls"}),
    Kind("networks", "Network", "network", {"global": "networks"}),
    Kind("subnetworks", "Subnetwork", "subnetwork", {"region": "subnetworks"}, fingerprinted=True),
]
KIND_BY_COLL = {k.coll: k for k in KINDS}
RES_TO_KIND = {res: (k, scope) for k in KINDS for scope, res in k.resources.items()}
AGGREGATED = {"addresses", "urlMaps", "backendServices", "healthChecks", "targetHttpProxies",
              "targetHttpsProxies", "sslCertificates", "forwardingRules", "networkEndpointGroups",
              "subnetworks"}
OPERATION_RESOURCES = {"globalOperations": "global", "regionOperations": "region", "zoneOperations": "zone"}

TARGET_PROXIES = {"targetHttpProxies", "targetHttpsProxies", "targetTcpProxies", "targetSslProxies", "targetGrpcProxies"}
# Which collections a reference field may name. Collections the fake does not
# store (backendBuckets, instanceGroups, ...) are accepted without a lookup.
REF_FIELDS = {
    "defaultService": {"backendServices", "backendBuckets"},
    "service": {"backendServices", "backendBuckets"},
    "backendService": {"backendServices"},
    "target": TARGET_PROXIES | {"targetInstances", "targetPools", "targetVpnGateways", "serviceAttachments"},
    "urlMap": {"urlMaps"},
    "healthChecks": {"healthChecks", "httpHealthChecks", "httpsHealthChecks"},
    "sslCertificates": {"sslCertificates"},
    "group": {"networkEndpointGroups", "instanceGroups"},
    "network": {"networks"},
    "subnetwork": {"subnetworks"},
    "sslPolicy": {"sslPolicies"},
    "securityPolicy": {"securityPolicies"},
    "certificateMap": None,  # certificatemanager URL, not compute
}
SKIP_KEYS = {"selfLink", "selfLinkWithId", "region", "zone", "kind", "id", "creationTimestamp", "description",
             "name", "fingerprint", "labelFingerprint", "labels", "certificate", "privateKey", "users", "usedBy",
             "IPAddress", "hosts", "paths", "pathMatcher"}


def now_ts() -> str:
    return datetime.now(PACIFIC).isoformat(timespec="milliseconds")


def scope_prefix(project: str, stype: str, sname: str | None) -> str:
    if stype == "global":
        return f"projects/{project}/global"
    return f"projects/{project}/{'regions' if stype == 'region' else 'zones'}/{sname}"


@dataclass
class Ref:
    key: str
    project: str
    stype: str
    sname: str | None
    coll: str
    name: str


def parse_ref(value: str, project: str) -> Ref | None:
    """Full URL, projects/..., or global|regions|zones/... partial URL."""
    s = value
    if s.startswith(BASE + "/"):
        s = s[len(BASE) + 1:]
    m = re.match(r"^https?://[^/]+/(.*)$", s)
    if m:
        s = m.group(1)
        m2 = re.match(r"^compute/(?:v1|beta|alpha)/(.*)$", s)
        if not m2:
            return None
        s = m2.group(1)
    if s.startswith(("global/", "regions/", "zones/")):
        s = f"projects/{project}/{s}"
    parts = s.split("/")
    if len(parts) == 5 and parts[0] == "projects" and parts[2] == "global":
        return Ref(s, parts[1], "global", None, parts[3], parts[4])
    if len(parts) == 6 and parts[0] == "projects" and parts[2] in ("regions", "zones"):
        return Ref(s, parts[1], "region" if parts[2] == "regions" else "zone", parts[3], parts[4], parts[5])
    return None


@dataclass
class Entry:
    key: str
    kind: Kind
    project: str
    stype: str
    sname: str | None
    body: dict
    refs: dict = field(default_factory=dict)  # referenced key -> field path
    gen: int = 0
    busy: "Operation | None" = None  # any change in flight: further changes are refused
    creating: "Operation | None" = None  # insert in flight: references to it are refused
    endpoints: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def prefix(self) -> str:
        return scope_prefix(self.project, self.stype, self.sname)


@dataclass
class Operation:
    key: str
    body: dict
    remaining: int
    created: float
    error: dict | None = None
    http_error: tuple | None = None
    on_done: list = field(default_factory=list)
    finished: bool = False


@dataclass
class Ctx:
    method: Method
    params: dict
    query: dict
    body: Any
    project: str
    base: str


def _b64hash(*parts) -> str:
    h = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()[:8]
    # Discovery-based APIs encode bytes fields in the URL-safe alphabet (real fingerprints look
    # like "--KE24GB4T0="); strict clients (google-cloud-rust) reject "+" and "/".
    return base64.urlsafe_b64encode(h).decode()


def same_bytes(a, b) -> bool:
    """Fingerprints are proto `bytes`: clients may send them back in standard
    or URL-safe base64 (apitools does the latter), so compare decoded bytes."""
    def dec(x):
        try:
            x = x.replace("-", "+").replace("_", "/")
            return base64.b64decode(x + "=" * (-len(x) % 4), validate=True)
        except Exception:
            return None
    da, db = dec(a), dec(b)
    return da is not None and da == db


def _deep_replace(obj, base):
    if isinstance(obj, str):
        return obj.replace(BASE, base) if obj.startswith(BASE) else obj
    if isinstance(obj, list):
        return [_deep_replace(x, base) for x in obj]
    if isinstance(obj, dict):
        return {k: _deep_replace(v, base) for k, v in obj.items()}
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, which is what Compute's PATCH documents."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class Config:
    def __init__(self):
        self.op_steps = int(os.environ.get("GCE_FAKE_OP_STEPS", "2"))
        self.require_fingerprint = os.environ.get("GCE_FAKE_REQUIRE_FINGERPRINT", "1") not in ("0", "false", "")
        self.op_autocomplete = float(os.environ.get("GCE_FAKE_OP_AUTOCOMPLETE_SECONDS", "0") or 0)
        self.default_network = os.environ.get("GCE_FAKE_DEFAULT_NETWORK", "1") not in ("0", "false", "")
        self.endpoint_health = os.environ.get("GCE_FAKE_ENDPOINT_HEALTH", "HEALTHY")


class Store:
    def __init__(self, disco: Discovery, config: Config | None = None):
        self.d = disco
        self.cfg = config or Config()
        self.reset()

    def reset(self):
        self.entries: dict[str, Entry] = {}
        self.ops: dict[str, Operation] = {}
        self.request_ids: dict[str, str] = {}
        self.faults: list[dict] = []
        self.projects: set[str] = set()
        self._id = 1_000_000_000_000_000_000
        self._ip_counter = 0

    # ------------------------------------------------------------------ helpers
    def next_id(self) -> str:
        self._id += 7_919_311
        return str(self._id)

    def _ensure_project(self, project: str):
        if project in self.projects:
            return
        self.projects.add(project)
        if not self.cfg.default_network:
            return
        net_key = f"projects/{project}/global/networks/default"
        body = {
            "name": "default", "description": "Default network for the project",
            "autoCreateSubnetworks": True, "routingConfig": {"routingMode": "REGIONAL"},
            "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
        }
        self._create_entry(KIND_BY_COLL["networks"], project, "global", None, body, {})
        for region, cidr in DEFAULT_SUBNETS.items():
            ip = ipaddress.ip_network(cidr)
            sb = {
                "name": "default", "network": f"{BASE}/{net_key}", "ipCidrRange": cidr,
                "gatewayAddress": str(ip.network_address + 1), "privateIpGoogleAccess": False,
                "purpose": "PRIVATE", "stackType": "IPV4_ONLY",
            }
            self._create_entry(KIND_BY_COLL["subnetworks"], project, "region", region, sb, {net_key: "resource.network"})

    def _create_entry(self, kind, project, stype, sname, body, refs) -> Entry:
        prefix = scope_prefix(project, stype, sname)
        key = f"{prefix}/{kind.coll}/{body['name']}"
        body = dict(body)
        body["kind"] = self.d.kind_of(kind.schema)
        body["id"] = self.next_id()
        body["creationTimestamp"] = now_ts()
        body["selfLink"] = f"{BASE}/{key}"
        if stype == "region":
            body["region"] = f"{BASE}/projects/{project}/regions/{sname}"
        elif stype == "zone":
            body["zone"] = f"{BASE}/projects/{project}/zones/{sname}"
        e = Entry(key, kind, project, stype, sname, body, refs)
        self._stamp(e, labels_changed=True)
        self.entries[key] = e
        return e

    def _stamp(self, e: Entry, labels_changed=False):
        e.gen += 1
        if e.kind.fingerprinted:
            e.body["fingerprint"] = _b64hash(e.key, e.body["id"], e.gen, "fp")
        if e.kind.labelled and labels_changed:
            labels = e.body.get("labels") or {}
            e.body["labelFingerprint"] = (
                _b64hash(e.key, e.body["id"], e.gen, json.dumps(labels, sort_keys=True)) if labels
                else EMPTY_LABEL_FINGERPRINT
            )

    def lookup(self, key: str) -> Entry | None:
        e = self.entries.get(key)
        if e is None:
            # Path parameters may carry the numeric id instead of the name.
            prefix, _, name = key.rpartition("/")
            if name.isdigit():
                for cand in self.entries.values():
                    if cand.body["id"] == name and cand.key.startswith(prefix + "/"):
                        return cand
        return e

    def users_of(self, key: str) -> list[Entry]:
        return sorted((e for e in self.entries.values() if key in e.refs), key=lambda e: e.key)

    def render(self, e: Entry, base: str) -> dict:
        body = copy.deepcopy(e.body)
        body.pop("privateKey", None)  # write-only
        if e.kind.coll == "addresses":
            users = [f"{BASE}/{u.key}" for u in self.users_of(e.key) if u.kind.coll == "forwardingRules"]
            if users:
                body["users"] = users
            body["status"] = "IN_USE" if users else "RESERVED"
        elif e.kind.coll == "backendServices":
            used = [{"reference": f"{BASE}/{u.key}"} for u in self.users_of(e.key)]
            if used:
                body["usedBy"] = used
        elif e.kind.coll == "networkEndpointGroups":
            body["size"] = len(e.endpoints)
        elif e.kind.coll == "networks":
            subs = [f"{BASE}/{u.key}" for u in self.users_of(e.key) if u.kind.coll == "subnetworks"]
            if subs:
                body["subnetworks"] = subs
        return _deep_replace(body, base)

    # ------------------------------------------------------------------- faults
    def take_fault(self, method_id: str, mode: str) -> dict | None:
        for f in self.faults:
            if f.get("method") in (method_id, "*") and f.get("mode", "http") == mode and f.get("count", 1) != 0:
                if f.get("count", 1) > 0:
                    f["count"] = f.get("count", 1) - 1
                return f
        return None

    # --------------------------------------------------------------- operations
    def _advance(self, op: Operation):
        if op.finished:
            return
        if op.remaining > 0:
            op.remaining -= 1
        if self.cfg.op_autocomplete and time.time() - op.created >= self.cfg.op_autocomplete:
            op.remaining = 0
        self._sync_status(op)

    def _sync_status(self, op: Operation):
        b = op.body
        if op.remaining <= 0:
            if not op.finished:
                op.finished = True
                b.setdefault("startTime", now_ts())
                b["status"] = "DONE"
                b["progress"] = 100
                b["endTime"] = now_ts()
                if op.error:
                    b["error"] = op.error
                    b["httpErrorStatusCode"], b["httpErrorMessage"] = op.http_error
                for cb in op.on_done:
                    cb(op)
        elif op.remaining == 1:
            b["status"] = "RUNNING"
            b["progress"] = 0
            b.setdefault("startTime", now_ts())
        else:
            b["status"] = "PENDING"
            b["progress"] = 0

    def new_op(self, ctx: Ctx, stype: str, sname: str | None, op_type: str, target_key: str,
               target_id: str | None) -> Operation:
        prefix = scope_prefix(ctx.project, stype, sname)
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
        key = f"{prefix}/operations/{name}"
        body = {
            "kind": "compute#operation", "id": self.next_id(), "name": name,
            "operationType": op_type, "targetLink": f"{BASE}/{target_key}",
            "status": "PENDING", "user": "cloudgate-test@cloudgate-test.iam.gserviceaccount.com",
            "progress": 0, "insertTime": now_ts(), "selfLink": f"{BASE}/{key}",
        }
        if target_id:
            body["targetId"] = target_id
        if stype == "region":
            body["region"] = f"{BASE}/projects/{ctx.project}/regions/{sname}"
        elif stype == "zone":
            body["zone"] = f"{BASE}/projects/{ctx.project}/zones/{sname}"
        op = Operation(key, body, max(self.cfg.op_steps, 0), time.time())
        self.ops[key] = op
        return op

    def mutation(self, ctx: Ctx, stype, sname, op_type, target_key, target_id,
                 apply: Callable[[Operation], None]) -> Operation:
        """Runs a validated change: applies it now (the resource stays 'not
        ready' for others until the operation is DONE) unless a fault injected
        for this method makes the operation fail asynchronously."""
        op = self.new_op(ctx, stype, sname, op_type, target_key, target_id)
        fault = self.take_fault(ctx.method.id, "operation")
        if fault:
            err = fault.get("operationError") or {}
            self.fail_op(op, err.get("code", "INTERNAL_ERROR"), err.get("message", "Injected failure."),
                         fault.get("httpStatus", 400))
        else:
            apply(op)
        rid = ctx.query.get("requestId")
        if rid:
            self.request_ids[rid] = op.key
        self._sync_status(op)
        return op

    @staticmethod
    def fail_op(op: Operation, code: str, message: str, http_status: int = 400):
        op.error = {"errors": [{"code": code, "message": message}]}
        phrase = {400: "BAD REQUEST", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT",
                  412: "PRECONDITION FAILED", 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR",
                  503: "SERVICE UNAVAILABLE"}.get(http_status, "BAD REQUEST")
        op.http_error = (http_status, phrase)

    def _mark_busy(self, e: Entry, op: Operation, creating=False):
        e.busy = op
        if creating:
            e.creating = op

        def done(o, e=e):
            if e.busy is o:
                e.busy = None
            if e.creating is o:
                e.creating = None

        op.on_done.append(done)

    def _check_not_busy(self, e: Entry):
        if e.busy is not None and not e.busy.finished:
            if self.cfg.op_autocomplete:
                self._advance_ready(e.busy)
            if e.busy is not None and not e.busy.finished:
                raise not_ready(e.key)

    def _advance_ready(self, op):
        if time.time() - op.created >= self.cfg.op_autocomplete:
            op.remaining = 0
            self._sync_status(op)

    # ------------------------------------------------------------- references
    def resolve_refs(self, body: dict, project: str, stype: str, sname, coll: str) -> dict:
        """Normalizes reference fields to full URLs (as GCE returns them),
        checks that tracked targets exist and are ready. Returns {key: path}."""
        refs: dict[str, str] = {}

        def visit(obj, path, fieldname):
            if isinstance(obj, dict):
                for k, v in list(obj.items()):
                    if k in SKIP_KEYS:
                        continue
                    obj[k] = visit(v, f"{path}.{k}", k)
                return obj
            if isinstance(obj, list):
                return [visit(v, f"{path}[{i}]", fieldname) for i, v in enumerate(obj)]
            if not isinstance(obj, str):
                return obj
            allowed = REF_FIELDS.get(fieldname, "generic")
            if allowed is None:
                return obj
            ref = parse_ref(obj, project)
            if ref is None:
                if allowed != "generic":
                    if fieldname in ("network", "subnetwork") and NAME_RE.fullmatch(obj):
                        # networks/subnetworks accept a bare name
                        ref = parse_ref(f"global/networks/{obj}" if fieldname == "network"
                                        else f"regions/{sname or ''}/subnetworks/{obj}", project)
                    if ref is None:
                        raise invalid_field(path, obj, "The URL is malformed.")
                else:
                    return obj
            if allowed != "generic" and ref.coll not in allowed:
                raise invalid_field(path, obj, f"The URL does not name a resource of an allowed type "
                                               f"({', '.join(sorted(allowed))}).")
            if ref.coll in KIND_BY_COLL:
                self._ensure_project(ref.project)
                target = self.entries.get(ref.key)
                if target is None:
                    raise not_found(ref.key)
                if target.creating is not None and not target.creating.finished:
                    if self.cfg.op_autocomplete:
                        self._advance_ready(target.creating)
                    if target.creating is not None and not target.creating.finished:
                        raise not_ready(target.key)
            refs.setdefault(ref.key, path)
            return f"{BASE}/{ref.key}"

        visit(body, "resource", "")
        return refs

    def _scope_match(self, path: str, value_key: str, stype: str, sname, allow_global=False):
        ref = parse_ref(value_key, "x")
        if ref is None:
            return
        if ref.stype == stype and ref.sname == sname:
            return
        if allow_global and ref.stype == "global":
            return
        here = "global" if stype == "global" else f"{stype} '{sname}'"
        there = "global" if ref.stype == "global" else f"{ref.stype} '{ref.sname}'"
        raise invalid_field(path, f"{value_key}",
                            f"A {here} resource cannot reference a {there} {ref.coll} resource.")

    # ----------------------------------------------------------------- dispatch
    def handle(self, meth: Method, params: dict, query: dict, body: Any, base: str):
        """Returns (http_status, json_body_or_None, schema_name_or_None)."""
        project = params.get("project", "")
        ctx = Ctx(meth, params, query, body, project, base)
        if "region" in params and params["region"] not in REGIONS:
            raise invalid_field("region", params["region"], "Unknown region.")
        if "zone" in params and params["zone"] not in ZONES:
            raise invalid_field("zone", params["zone"], "Unknown zone.")
        if project:
            self._ensure_project(project)
        rid = query.get("requestId")
        if rid is not None:
            try:
                u = uuid.UUID(rid)
            except ValueError:
                raise invalid_field("requestId", rid, "The request ID must be a valid UUID.") from None
            if u.int == 0:
                raise invalid_field("requestId", rid, "The zero UUID is not supported.")
            if rid in self.request_ids and self.request_ids[rid] in self.ops:
                op = self.ops[self.request_ids[rid]]
                return 200, _deep_replace(copy.deepcopy(op.body), base), "Operation"
        if meth.resource in OPERATION_RESOURCES:
            return self._operations(ctx, OPERATION_RESOURCES[meth.resource])
        if meth.resource in ("regions", "zones"):
            return self._geo(ctx)
        if meth.resource in RES_TO_KIND:
            kind, stype = RES_TO_KIND[meth.resource]
            sname = params.get("region") if stype == "region" else params.get("zone")
            return self._resource(ctx, kind, stype, sname)
        if meth.name == "aggregatedList" and meth.resource in AGGREGATED:
            return self._aggregated(ctx, KIND_BY_COLL[meth.resource])
        raise ApiError(501, "notImplemented", f"Method {meth.id} is not implemented by the cloudgate GCE fake.")

    def _resource(self, ctx: Ctx, kind: Kind, stype: str, sname):
        m = ctx.method
        if m.name == "aggregatedList":
            return self._aggregated(ctx, kind)
        prefix = scope_prefix(ctx.project, stype, sname)
        if m.name == "list":
            return self._list(ctx, kind, prefix)
        if m.name == "insert":
            return self._insert(ctx, kind, stype, sname, prefix)
        # every other method names one resource in its last path parameter
        name = None
        for seg in reversed(m.segments):
            if seg.startswith("{"):
                name = ctx.params[seg.strip("{}+")]
                break
        key = f"{prefix}/{kind.coll}/{name}"
        e = self.lookup(key)
        if e is None:
            raise not_found(key)
        handler = {
            "get": self._get, "delete": self._delete, "patch": self._patch, "update": self._update,
            "setLabels": self._set_labels, "setTarget": self._set_target, "setUrlMap": self._set_url_map,
            "setSslCertificates": self._set_ssl_certificates,
            "attachNetworkEndpoints": self._attach, "detachNetworkEndpoints": self._detach,
            "listNetworkEndpoints": self._list_endpoints,
        }.get(m.name)
        if handler is None:
            raise ApiError(501, "notImplemented", f"Method {m.id} is not implemented by the cloudgate GCE fake.")
        return handler(ctx, e)

    # ------------------------------------------------------------- list & get
    def _get(self, ctx, e):
        return 200, self.render(e, ctx.base), e.kind.schema

    def _page(self, ctx, items: list, id_str: str):
        q = ctx.query
        try:
            pred = filters.parse(q.get("filter"))
        except filters.FilterError as err:
            raise invalid_field("filter", q.get("filter"), f"Invalid list filter expression: {err}.") from None
        items = [i for i in items if pred(i)]
        order = q.get("orderBy")
        if order in (None, "", "name"):
            items.sort(key=lambda i: (i.get("name", ""), i.get("selfLink", "")))
        elif order == "creationTimestamp desc":
            items.sort(key=lambda i: (i.get("creationTimestamp", ""), i.get("id", "")), reverse=True)
        else:
            raise invalid_field("orderBy", order, "Only 'name' and 'creationTimestamp desc' are supported.")
        max_results = q.get("maxResults", 500)
        if max_results > 500:
            raise invalid_field("maxResults", max_results, "Must be less than or equal to 500.")
        if max_results == 0:
            max_results = 500
        token = q.get("pageToken")
        offset = 0
        fp = _b64hash(id_str, q.get("filter"), order)
        if token:
            try:
                data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
                offset = int(data["o"])
                if data["f"] != fp:
                    raise ValueError
            except Exception:
                raise invalid_field("pageToken", token, "Invalid page token.") from None
        page = items[offset:offset + max_results]
        nxt = None
        if offset + max_results < len(items):
            nxt = base64.urlsafe_b64encode(json.dumps({"o": offset + max_results, "f": fp}).encode()).decode().rstrip("=")
        return page, nxt

    def _list(self, ctx, kind, prefix):
        items = [self.render(e, ctx.base) for e in self.entries.values()
                 if e.kind is kind and e.key.startswith(prefix + f"/{kind.coll}/")]
        page, nxt = self._page(ctx, items, prefix + kind.coll)
        resp_schema = ctx.method.response
        body = {"kind": self.d.kind_of(resp_schema), "id": f"{prefix}/{kind.coll}",
                "selfLink": f"{ctx.base}/{prefix}/{kind.coll}"}
        if page:
            body["items"] = page  # GCE omits `items` on an empty list
        if nxt:
            body["nextPageToken"] = nxt
        return 200, body, resp_schema

    def _aggregated(self, ctx, kind):
        resp_schema = ctx.method.response
        scoped_schema = self.d.schemas[resp_schema]["properties"]["items"]["additionalProperties"]["$ref"]
        list_key = next(k for k in self.d.schemas[scoped_schema]["properties"] if k != "warning")
        rendered = []
        for e in self.entries.values():
            if e.kind is kind and e.project == ctx.project:
                rendered.append((e, self.render(e, ctx.base)))
        pred_items = [r for _, r in rendered]
        page, nxt = self._page(ctx, pred_items, f"agg/{ctx.project}/{kind.coll}")
        scope_of = {id(r): (e.stype, e.sname) for e, r in rendered}
        items: dict[str, dict] = {}
        for r in page:
            stype, sname = scope_of[id(r)]
            sk = "global" if stype == "global" else f"{'regions' if stype == 'region' else 'zones'}/{sname}"
            items.setdefault(sk, {list_key: []})[list_key].append(r)
        if ctx.query.get("includeAllScopes"):
            scopes = []
            if "global" in kind.resources:
                scopes.append("global")
            if "region" in kind.resources:
                scopes += [f"regions/{r}" for r in REGIONS]
            if "zone" in kind.resources:
                scopes += [f"zones/{z}" for z in ZONES]
            for sk in scopes:
                items.setdefault(sk, {"warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": f"There are no results for scope '{sk}' on this page.",
                    "data": [{"key": "scope", "value": sk}]}})
        body = {"kind": self.d.kind_of(resp_schema), "id": f"projects/{ctx.project}/aggregated/{kind.coll}",
                "items": items, "selfLink": f"{ctx.base}/projects/{ctx.project}/aggregated/{kind.coll}"}
        if nxt:
            body["nextPageToken"] = nxt
        return 200, body, resp_schema

    # ---------------------------------------------------------------- insert
    def _check_name(self, body: dict):
        name = body.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise invalid_field("resource.name", name or "",
                                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")

    def _insert(self, ctx, kind, stype, sname, prefix):
        body = copy.deepcopy(ctx.body or {})
        self._check_name(body)
        key = f"{prefix}/{kind.coll}/{body['name']}"
        if key in self.entries:
            raise already_exists(key)
        if kind.labelled:
            self._check_labels(body.get("labels"), "resource.labels")
        body, refs = self._prepare(kind, body, ctx.project, stype, sname, None)

        def apply(op):
            e = self._create_entry(kind, ctx.project, stype, sname, body, refs)
            op.body["targetId"] = e.body["id"]
            self._mark_busy(e, op, creating=True)

        op = self.mutation(ctx, stype, sname, "insert", key, None, apply)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _prepare(self, kind, body, project, stype, sname, existing: Entry | None):
        """Defaults + semantic checks + references for the whole desired body."""
        hook = getattr(self, f"_prep_{kind.coll}", None)
        if hook:
            hook(body, project, stype, sname, existing)
        refs = self.resolve_refs(body, project, stype, sname, kind.coll)
        post = getattr(self, f"_post_{kind.coll}", None)
        if post:
            post(body, refs, project, stype, sname, existing)
        return body, refs

    # ------------------------------------------------------- update & patch
    def _user_fields(self, e: Entry) -> dict:
        out_only = self.d.output_only(e.kind.schema)
        return {k: copy.deepcopy(v) for k, v in e.body.items()
                if k not in out_only and k not in ("fingerprint", "labelFingerprint")}

    def _check_fingerprint(self, e: Entry, supplied):
        if not e.kind.fingerprinted:
            return
        if supplied is None:
            # Required only where the discovery document says so ("An up-to-date
            # fingerprint must be provided..."); forwardingRules only suggest it.
            desc = self.d.schemas[e.kind.schema]["properties"]["fingerprint"].get("description", "")
            if self.cfg.require_fingerprint and "must be provided" in " ".join(desc.split()):
                raise ApiError(412, "conditionNotMet",
                               "Required field 'fingerprint' not specified; an up-to-date fingerprint must be "
                               "provided to update this resource.")
            return
        if not same_bytes(supplied, e.body.get("fingerprint", "")):
            raise fingerprint_mismatch()

    def _replace(self, ctx, e: Entry, new_body: dict, op_type: str):
        if new_body.get("name", e.name) != e.name:
            raise invalid_field("resource.name", new_body.get("name"), "The name of a resource cannot be changed.")
        new_body["name"] = e.name
        for k in ("labels",):
            if e.kind.labelled and k in new_body and new_body.get(k) != e.body.get(k):
                raise invalid_field("resource.labels", "", "Labels can only be changed with setLabels.")
            if e.kind.labelled and e.body.get(k) is not None:
                new_body[k] = copy.deepcopy(e.body[k])
        new_body, refs = self._prepare(e.kind, new_body, e.project, e.stype, e.sname, e)

        def apply(op):
            out_only = self.d.output_only(e.kind.schema)
            keep = {k: v for k, v in e.body.items() if k in out_only or k == "labelFingerprint"}
            e.body = {**new_body, **keep}
            e.refs = refs
            self._stamp(e)
            self._mark_busy(e, op)

        op = self.mutation(ctx, e.stype, e.sname, op_type, e.key, e.body["id"], apply)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _update(self, ctx, e):
        self._check_not_busy(e)
        body = copy.deepcopy(ctx.body or {})
        self._check_fingerprint(e, body.pop("fingerprint", None))
        body.pop("labelFingerprint", None)
        return self._replace(ctx, e, body, "update")

    FR_PATCHABLE = {"networkTier", "allowGlobalAccess", "allowPscGlobalAccess", "sourceIpRanges", "name"}

    def _patch(self, ctx, e):
        self._check_not_busy(e)
        patch = copy.deepcopy(ctx.body or {})
        self._check_fingerprint(e, patch.pop("fingerprint", None))
        patch.pop("labelFingerprint", None)
        if e.kind.coll == "forwardingRules":
            bad = sorted(k for k in patch if k not in self.FR_PATCHABLE)
            if bad:
                raise invalid_field(f"resource.{bad[0]}", "",
                                    "This field cannot be changed with forwardingRules.patch; only "
                                    f"{', '.join(sorted(self.FR_PATCHABLE - {'name'}))} can.")
        merged = merge_patch(self._user_fields(e), patch)
        return self._replace(ctx, e, merged, "patch")

    # --------------------------------------------------------------- delete
    def _delete(self, ctx, e):
        self._check_not_busy(e)
        users = [u for u in self.users_of(e.key) if not (e.kind.coll == "networks" and u.kind.coll == "subnetworks"
                                                         and u.name == "default")]
        if users:
            raise in_use(e.kind.singular, e.key, users[0].key)

        def apply(op):
            self.entries.pop(e.key, None)
            if e.kind.coll == "networks":
                for sub in self.users_of(e.key):
                    self.entries.pop(sub.key, None)

        op = self.mutation(ctx, e.stype, e.sname, "delete", e.key, e.body["id"], apply)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    # ------------------------------------------------------------ set* verbs
    def _check_labels(self, labels, path):
        if labels is None:
            return
        if len(labels) > 64:
            raise invalid_field(path, "", "At most 64 labels are allowed.")
        for k, v in labels.items():
            if not LABEL_KEY_RE.fullmatch(k):
                raise invalid_field(f"{path}.key", k, "Label keys must start with a lowercase letter and "
                                    "contain only lowercase letters, digits, '_' and '-' (max 63).")
            if not LABEL_VALUE_RE.fullmatch(v):
                raise invalid_field(f"{path}.value", v, "Label values may contain only lowercase letters, "
                                    "digits, '_' and '-' (max 63).")

    def _set_labels(self, ctx, e):
        self._check_not_busy(e)
        req = ctx.body or {}
        fp = req.get("labelFingerprint")
        if fp is None and self.cfg.require_fingerprint:
            raise ApiError(412, "conditionNotMet", "Required field 'labelFingerprint' not specified.")
        if fp is not None and not same_bytes(fp, e.body.get("labelFingerprint", "")):
            raise fingerprint_mismatch("label fingerprint")
        labels = req.get("labels") or {}
        self._check_labels(labels, "labels")

        def apply(op):
            if labels:
                e.body["labels"] = dict(labels)
            else:
                e.body.pop("labels", None)
            self._stamp(e, labels_changed=True)
            self._mark_busy(e, op)

        op = self.mutation(ctx, e.stype, e.sname, "setLabels", e.key, e.body["id"], apply)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _set_field(self, ctx, e, fieldname, value, op_type):
        self._check_not_busy(e)
        new_body = self._user_fields(e)
        new_body[fieldname] = value
        new_body, refs = self._prepare(e.kind, new_body, e.project, e.stype, e.sname, e)

        def apply(op):
            e.body[fieldname] = new_body[fieldname]
            e.refs = refs
            self._stamp(e)
            self._mark_busy(e, op)

        op = self.mutation(ctx, e.stype, e.sname, op_type, e.key, e.body["id"], apply)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _set_target(self, ctx, e):
        target = (ctx.body or {}).get("target")
        if not target:
            raise ApiError(400, "required", "Required field 'target' not specified")
        return self._set_field(ctx, e, "target", target, "SetTarget")

    def _set_url_map(self, ctx, e):
        url_map = (ctx.body or {}).get("urlMap")
        if not url_map:
            raise ApiError(400, "required", "Required field 'urlMap' not specified")
        return self._set_field(ctx, e, "urlMap", url_map, "SetUrlMap")

    def _set_ssl_certificates(self, ctx, e):
        certs = (ctx.body or {}).get("sslCertificates") or []
        return self._set_field(ctx, e, "sslCertificates", certs, "SetSslCertificates")

    # ---------------------------------------------------- network endpoints
    def _endpoint_key(self, neg: Entry, ep: dict, path: str):
        port = ep.get("port", neg.body.get("defaultPort"))
        ntype = neg.body.get("networkEndpointType")
        if ntype in ("GCE_VM_IP_PORT", "NON_GCP_PRIVATE_IP_PORT", "INTERNET_IP_PORT", "INTERNET_FQDN_PORT",
                     "GCE_VM_IP_PORTMAP") and port is None:
            raise invalid_field(f"{path}.port", "", "A port must be specified when the network endpoint group "
                                                    "has no defaultPort.")
        if port is not None and not 1 <= port <= 65535:
            raise invalid_field(f"{path}.port", port, "Port must be in [1, 65535].")
        ip = ep.get("ipAddress")
        if ip is not None:
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise invalid_field(f"{path}.ipAddress", ip, "Must be a valid IPv4 address.") from None
        if ntype in ("GCE_VM_IP_PORT", "GCE_VM_IP"):
            if not ep.get("instance"):
                raise invalid_field(f"{path}.instance", "",
                                    f"The instance is required for network endpoints of type {ntype}.")
            if not ip:
                # Real GCE would use the VM's primary IP; the fake has no VMs.
                raise invalid_field(f"{path}.ipAddress", "", "The fake needs an explicit ipAddress (it has no "
                                                             "instances to take a primary IP from).")
        elif ntype in ("NON_GCP_PRIVATE_IP_PORT", "INTERNET_IP_PORT") and not ip:
            raise invalid_field(f"{path}.ipAddress", "", f"ipAddress is required for type {ntype}.")
        elif ntype == "INTERNET_FQDN_PORT" and not ep.get("fqdn"):
            raise invalid_field(f"{path}.fqdn", "", "fqdn is required for type INTERNET_FQDN_PORT.")
        inst = ep.get("instance")
        if inst:
            inst = inst.rstrip("/").split("/")[-1]
        return (ip, port, inst, ep.get("fqdn"))

    def _attach(self, ctx, e):
        self._check_not_busy(e)
        eps = (ctx.body or {}).get("networkEndpoints") or []
        if len(eps) > 500:
            raise invalid_field("networkEndpoints", len(eps), "At most 500 network endpoints per request.")
        keys = []
        for i, ep in enumerate(eps):
            k = self._endpoint_key(e, ep, f"networkEndpoints[{i}]")
            if k in keys:
                raise invalid_field(f"networkEndpoints[{i}]", json.dumps(ep), "Duplicate network endpoint.")
            keys.append(k)
        existing = {self._endpoint_key(e, x, "") for x in e.endpoints}
        dup = [eps[i] for i, k in enumerate(keys) if k in existing]

        op = self.new_op(ctx, e.stype, e.sname, "attachNetworkEndpoints", e.key, e.body["id"])
        fault = self.take_fault(ctx.method.id, "operation")
        if fault:
            err = fault.get("operationError") or {}
            self.fail_op(op, err.get("code", "INTERNAL_ERROR"), err.get("message", "Injected failure."),
                         fault.get("httpStatus", 400))
        elif dup:
            self.fail_op(op, "RESOURCE_ALREADY_EXISTS",
                         f"Network endpoint {json.dumps(dup[0], sort_keys=True)} already exists in network "
                         f"endpoint group '{e.key}'.", 400)
        else:
            for ep, (ip, port, inst, fqdn) in zip(eps, keys):
                stored = {k: v for k, v in ep.items() if v is not None}
                if port is not None:
                    stored["port"] = port
                if inst:
                    stored["instance"] = inst
                e.endpoints.append(stored)
            self._mark_busy(e, op)
        if ctx.query.get("requestId"):
            self.request_ids[ctx.query["requestId"]] = op.key
        self._sync_status(op)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _detach(self, ctx, e):
        self._check_not_busy(e)
        eps = (ctx.body or {}).get("networkEndpoints") or []
        keys = [self._endpoint_key(e, ep, f"networkEndpoints[{i}]") for i, ep in enumerate(eps)]
        have = [self._endpoint_key(e, x, "") for x in e.endpoints]
        missing = [eps[i] for i, k in enumerate(keys) if k not in have]
        op = self.new_op(ctx, e.stype, e.sname, "detachNetworkEndpoints", e.key, e.body["id"])
        fault = self.take_fault(ctx.method.id, "operation")
        if fault:
            err = fault.get("operationError") or {}
            self.fail_op(op, err.get("code", "INTERNAL_ERROR"), err.get("message", "Injected failure."),
                         fault.get("httpStatus", 400))
        elif missing:
            self.fail_op(op, "RESOURCE_NOT_FOUND",
                         f"Network endpoint {json.dumps(missing[0], sort_keys=True)} was not found in network "
                         f"endpoint group '{e.key}'.", 404)
        else:
            drop = set(keys)
            e.endpoints = [x for x, k in zip(e.endpoints, have) if k not in drop]
            self._mark_busy(e, op)
        if ctx.query.get("requestId"):
            self.request_ids[ctx.query["requestId"]] = op.key
        self._sync_status(op)
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _list_endpoints(self, ctx, e):
        show = (ctx.body or {}).get("healthStatus", "SKIP") == "SHOW"
        services = [u for u in self.users_of(e.key) if u.kind.coll == "backendServices"]
        items = []
        for ep in e.endpoints:
            item = {"networkEndpoint": copy.deepcopy(ep)}
            if show:
                healths = []
                for bs in services:
                    h = {"backendService": {"backendService": f"{BASE}/{bs.key}"},
                         "healthState": self.cfg.endpoint_health}
                    hcs = bs.body.get("healthChecks") or []
                    if hcs:
                        h["healthCheck"] = {"healthCheck": hcs[0]}
                    healths.append(h)
                if healths:
                    item["healths"] = healths
            items.append(_deep_replace(item, ctx.base))
        # filter/order apply to the endpoint fields; keep attach order by default
        q = dict(ctx.query)
        flat = [{"name": "", **it["networkEndpoint"], "_item": it} for it in items]
        try:
            pred = filters.parse(q.get("filter"))
        except filters.FilterError as err:
            raise invalid_field("filter", q.get("filter"), f"Invalid list filter expression: {err}.") from None
        flat = [f for f in flat if pred(f)]
        max_results = q.get("maxResults", 500) or 500
        if max_results > 500:
            raise invalid_field("maxResults", max_results, "Must be less than or equal to 500.")
        offset = 0
        fp = _b64hash(e.key, q.get("filter"))
        if q.get("pageToken"):
            tok = q["pageToken"]
            try:
                data = json.loads(base64.urlsafe_b64decode(tok.encode() + b"=" * (-len(tok) % 4)))
                offset = int(data["o"])
                assert data["f"] == fp
            except Exception:
                raise invalid_field("pageToken", tok, "Invalid page token.") from None
        page = [f["_item"] for f in flat[offset:offset + max_results]]
        body = {"kind": "compute#networkEndpointGroupsListNetworkEndpoints", "id": e.key}
        if page:
            body["items"] = page
        if offset + max_results < len(flat):
            body["nextPageToken"] = base64.urlsafe_b64encode(
                json.dumps({"o": offset + max_results, "f": fp}).encode()).decode().rstrip("=")
        return 200, body, ctx.method.response

    # ------------------------------------------------------------ operations
    def _operations(self, ctx, stype):
        p = ctx.params
        sname = p.get("region") if stype == "region" else p.get("zone")
        prefix = scope_prefix(ctx.project, stype, sname)
        m = ctx.method
        if m.name == "list":
            items = [_deep_replace(copy.deepcopy(o.body), ctx.base) for o in self.ops.values()
                     if o.key.startswith(prefix + "/operations/")]
            page, nxt = self._page(ctx, items, prefix + "/operations")
            body = {"kind": "compute#operationList", "id": f"{prefix}/operations",
                    "selfLink": f"{ctx.base}/{prefix}/operations"}
            if page:
                body["items"] = page
            if nxt:
                body["nextPageToken"] = nxt
            return 200, body, "OperationList"
        if m.name == "aggregatedList":
            root = f"projects/{ctx.project}/"
            rendered = [(o, _deep_replace(copy.deepcopy(o.body), ctx.base)) for o in self.ops.values()
                        if o.key.startswith(root)]
            page, nxt = self._page(ctx, [r for _, r in rendered], f"agg/{ctx.project}/operations")
            where = {id(r): o.key.split("/operations/")[0][len(root):] for o, r in rendered}
            items: dict = {}
            for r in page:
                items.setdefault(where[id(r)], {"operations": []})["operations"].append(r)
            body = {"kind": "compute#operationAggregatedList", "id": f"projects/{ctx.project}/aggregated/operations",
                    "items": items, "selfLink": f"{ctx.base}/projects/{ctx.project}/aggregated/operations"}
            if nxt:
                body["nextPageToken"] = nxt
            return 200, body, "OperationAggregatedList"
        key = f"{prefix}/operations/{p['operation']}"
        op = self.ops.get(key)
        if op is None and p["operation"].isdigit():
            op = next((o for o in self.ops.values() if o.body["id"] == p["operation"]
                       and o.key.startswith(prefix + "/")), None)
        if op is None:
            raise not_found(key)
        if m.name == "delete":
            self.ops.pop(op.key, None)
            return 204, None, None
        if m.name == "wait":
            # Compute holds a wait until the operation is DONE (or about two minutes pass). The
            # fake's operations are steps that reads move on, so a wait takes all of them.
            if not op.finished:
                op.remaining = 0
                self._sync_status(op)
        else:
            self._advance(op)  # a get moves the operation one step
        return 200, _deep_replace(copy.deepcopy(op.body), ctx.base), "Operation"

    def _geo(self, ctx):
        m = ctx.method
        project = ctx.project

        def region_body(r):
            return {"kind": "compute#region", "id": str(1000 + sorted(REGIONS).index(r)), "name": r,
                    "description": r, "status": "UP", "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                    "zones": [f"{ctx.base}/projects/{project}/zones/{r}-{z}" for z in REGIONS[r]],
                    "selfLink": f"{ctx.base}/projects/{project}/regions/{r}"}

        def zone_body(z):
            return {"kind": "compute#zone", "id": str(2000 + sorted(ZONES).index(z)), "name": z,
                    "description": z, "status": "UP", "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                    "region": f"{ctx.base}/projects/{project}/regions/{ZONES[z]}",
                    "selfLink": f"{ctx.base}/projects/{project}/zones/{z}"}

        if m.resource == "regions":
            if m.name == "get":
                return 200, region_body(ctx.params["region"]), "Region"
            if m.name == "list":
                page, nxt = self._page(ctx, [region_body(r) for r in REGIONS], "regions")
                body = {"kind": "compute#regionList", "id": f"projects/{project}/regions", "items": page,
                        "selfLink": f"{ctx.base}/projects/{project}/regions"}
                if nxt:
                    body["nextPageToken"] = nxt
                return 200, body, "RegionList"
        else:
            if m.name == "get":
                return 200, zone_body(ctx.params["zone"]), "Zone"
            if m.name == "list":
                page, nxt = self._page(ctx, [zone_body(z) for z in ZONES], "zones")
                body = {"kind": "compute#zoneList", "id": f"projects/{project}/zones", "items": page,
                        "selfLink": f"{ctx.base}/projects/{project}/zones"}
                if nxt:
                    body["nextPageToken"] = nxt
                return 200, body, "ZoneList"
        raise ApiError(501, "notImplemented", f"Method {m.id} is not implemented by the cloudgate GCE fake.")

    # =================================================== per-kind semantics
    # _prep_<coll>(body, project, stype, sname, existing): defaults and checks
    # before references are resolved; _post_<coll>(body, refs, ...) after.

    def _ref_entry(self, value: str | None, project: str) -> Entry | None:
        if not value:
            return None
        ref = parse_ref(value.replace(BASE + "/", ""), project)
        return self.entries.get(ref.key) if ref else None

    def _prep_urlMaps(self, body, project, stype, sname, existing):
        def exclusive(obj, path, svc_key):
            have = [k for k in (svc_key, "defaultUrlRedirect" if svc_key == "defaultService" else "urlRedirect")
                    if obj.get(k)]
            ra = obj.get("defaultRouteAction" if svc_key == "defaultService" else "routeAction") or {}
            if ra.get("weightedBackendServices"):
                have.append("weightedBackendServices")
            if len(have) > 1:
                raise invalid_field(path, "", f"Only one of {svc_key}, redirect or "
                                    f"routeAction.weightedBackendServices may be set (found {', '.join(have)}).")
            for i, w in enumerate(ra.get("weightedBackendServices") or []):
                if not 0 <= w.get("weight", 0) <= 1000:
                    raise invalid_field(f"{path}.routeAction.weightedBackendServices[{i}].weight", w.get("weight"),
                                        "Weight must be in [0, 1000].")
            return have

        exclusive(body, "resource", "defaultService")
        matchers = body.get("pathMatchers") or []
        names = set()
        for i, pm in enumerate(matchers):
            path = f"resource.pathMatchers[{i}]"
            if not pm.get("name") or not NAME_RE.fullmatch(pm["name"]):
                raise invalid_field(f"{path}.name", pm.get("name", ""), "Must be a valid RFC1035 name.")
            if pm["name"] in names:
                raise invalid_field(f"{path}.name", pm["name"], "Duplicate path matcher name.")
            names.add(pm["name"])
            exclusive(pm, path, "defaultService")
            if pm.get("pathRules") and pm.get("routeRules"):
                raise invalid_field(path, pm["name"], "A path matcher cannot have both pathRules and routeRules.")
            seen_paths = set()
            for j, pr in enumerate(pm.get("pathRules") or []):
                exclusive(pr, f"{path}.pathRules[{j}]", "service")
                for p in pr.get("paths") or []:
                    if not p.startswith("/") or ("*" in p and not p.endswith("/*")) or p.count("*") > 1:
                        raise invalid_field(f"{path}.pathRules[{j}].paths", p,
                                            "Paths must start with '/' and may only end in '/*'.")
                    if p in seen_paths:
                        raise invalid_field(f"{path}.pathRules[{j}].paths", p, "Duplicate path in path matcher.")
                    seen_paths.add(p)
            prios = set()
            for j, rr in enumerate(pm.get("routeRules") or []):
                rpath = f"{path}.routeRules[{j}]"
                if "priority" not in rr:
                    raise invalid_field(f"{rpath}.priority", "", "A route rule must have a priority.")
                if not 0 <= rr["priority"] <= 2147483647:
                    raise invalid_field(f"{rpath}.priority", rr["priority"], "Priority must be in [0, 2147483647].")
                if rr["priority"] in prios:
                    raise invalid_field(f"{rpath}.priority", rr["priority"],
                                        "Two route rules in the same path matcher cannot have the same priority.")
                prios.add(rr["priority"])
                exclusive(rr, rpath, "service")
                _check_route_rule(rr, rpath)
        hosts_seen = set()
        for i, hr in enumerate(body.get("hostRules") or []):
            path = f"resource.hostRules[{i}]"
            if hr.get("pathMatcher") not in names:
                raise invalid_field(f"{path}.pathMatcher", hr.get("pathMatcher", ""),
                                    "The path matcher is not defined in pathMatchers.")
            if not hr.get("hosts"):
                raise invalid_field(f"{path}.hosts", "", "A host rule needs at least one host.")
            for h in hr["hosts"]:
                if h in hosts_seen:
                    raise invalid_field(f"{path}.hosts", h, "Duplicate host in host rules.")
                hosts_seen.add(h)

    def _post_urlMaps(self, body, refs, project, stype, sname, existing):
        for key, path in refs.items():
            if "/backendServices/" in key:
                self._scope_match(path, key, stype, sname)
        # compute.v1: "Regular expressions can only be used when the loadBalancingScheme is set
        # to INTERNAL_SELF_MANAGED, EXTERNAL_MANAGED (regional scope) or INTERNAL_MANAGED." A
        # global URL map's scheme is its backend services' scheme.
        if stype == "global" and _uses_regex(body):
            for key in refs:
                bs = self.entries.get(key)
                scheme = bs.body.get("loadBalancingScheme") if bs and bs.kind.coll == "backendServices" else None
                if scheme and scheme != "INTERNAL_SELF_MANAGED":
                    raise invalid_field("resource.pathMatchers", "regexMatch",
                                        f"Regular expressions cannot be used in a global URL map whose backend "
                                        f"services have loadBalancingScheme {scheme}.")
        if existing and _uses_https_redirect(body):
            for user in self.users_of(existing.key):
                if user.kind.coll == "targetHttpsProxies":
                    raise invalid_field("resource", "httpsRedirect",
                                        f"httpsRedirect cannot be set in a URL map used by the target HTTPS proxy "
                                        f"'{user.key}'.")

    def _prep_backendServices(self, body, project, stype, sname, existing):
        body.setdefault("loadBalancingScheme", "EXTERNAL" if stype == "global" else "INTERNAL")
        body.setdefault("protocol", "HTTP" if body["loadBalancingScheme"] != "INTERNAL" else "TCP")
        body.setdefault("timeoutSec", 30)
        body.setdefault("sessionAffinity", "NONE")
        body.setdefault("affinityCookieTtlSec", 0)
        if len(body.get("healthChecks") or []) > 1:
            raise invalid_field("resource.healthChecks", "", "At most one health check can be specified.")
        groups = set()
        for i, b in enumerate(body.get("backends") or []):
            path = f"resource.backends[{i}]"
            if not b.get("group"):
                raise invalid_field(f"{path}.group", "", "A backend needs a group.")
            if b["group"] in groups:
                raise invalid_field(f"{path}.group", b["group"], "Duplicate backend group.")
            groups.add(b["group"])
            b.setdefault("capacityScaler", 1)
            if b.get("balancingMode") == "RATE" and not any(
                    b.get(k) is not None for k in ("maxRate", "maxRatePerInstance", "maxRatePerEndpoint")):
                raise invalid_field(f"{path}.balancingMode", "RATE", "Balancing mode RATE needs one of maxRate, "
                                    "maxRatePerInstance or maxRatePerEndpoint.")

    def _post_backendServices(self, body, refs, project, stype, sname, existing):
        zonal_neg = False
        for i, b in enumerate(body.get("backends") or []):
            neg = self._ref_entry(b["group"], project)
            if neg is None or neg.kind.coll != "networkEndpointGroups":
                continue
            if stype == "region" and ZONES.get(neg.sname) != sname:
                raise invalid_field(f"resource.backends[{i}].group", neg.key,
                                    f"The network endpoint group must be in region {sname}.")
            ntype = neg.body.get("networkEndpointType")
            if ntype in ("GCE_VM_IP_PORT", "GCE_VM_IP", "NON_GCP_PRIVATE_IP_PORT"):
                zonal_neg = True
                if b.get("balancingMode") == "UTILIZATION":
                    raise invalid_field(f"resource.backends[{i}].balancingMode", "UTILIZATION",
                                        "Balancing mode UTILIZATION is not supported for network endpoint groups.")
        if zonal_neg and not body.get("healthChecks") and not body.get("haPolicy"):
            raise invalid_field("resource.healthChecks", "",
                                "Backend services with zonal NEG backends must have a health check.")
        for key, path in refs.items():
            if "/healthChecks/" in key:
                self._scope_match(path, key, stype, sname, allow_global=stype == "region")

    HC_BLOCKS = {"HTTP": "httpHealthCheck", "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck",
                 "TCP": "tcpHealthCheck", "SSL": "sslHealthCheck", "GRPC": "grpcHealthCheck",
                 "GRPC_WITH_TLS": "grpcTlsHealthCheck"}

    def _prep_healthChecks(self, body, project, stype, sname, existing):
        t = body.get("type")
        present = [k for k in self.HC_BLOCKS.values() if body.get(k) is not None]
        if not t:
            raise invalid_field("resource.type", "", "The health check type must be specified.")
        block = self.HC_BLOCKS.get(t)
        if block is None:
            raise invalid_field("resource.type", t, "Unsupported health check type.")
        if present and present != [block]:
            raise invalid_field(f"resource.{present[0]}", "", f"Exactly one protocol-specific block, matching "
                                f"type {t} ({block}), must be set.")
        body.setdefault("checkIntervalSec", 5)
        body.setdefault("timeoutSec", 5)
        body.setdefault("healthyThreshold", 2)
        body.setdefault("unhealthyThreshold", 2)
        if body["timeoutSec"] > body["checkIntervalSec"]:
            raise invalid_field("resource.timeoutSec", body["timeoutSec"],
                                "timeoutSec must be less than or equal to checkIntervalSec.")
        hc = body.setdefault(block, {})
        spec = hc.get("portSpecification")
        if spec != "USE_SERVING_PORT" and hc.get("port") is None and not hc.get("portName"):
            hc["port"] = {"HTTPS": 443, "SSL": 443}.get(t, 80)
        if spec == "USE_SERVING_PORT" and hc.get("port") is not None:
            raise invalid_field(f"resource.{block}.port", hc["port"],
                                "port must not be set when portSpecification is USE_SERVING_PORT.")
        if t in ("HTTP", "HTTPS", "HTTP2"):
            hc.setdefault("requestPath", "/")
            if not hc["requestPath"].startswith("/"):
                raise invalid_field(f"resource.{block}.requestPath", hc["requestPath"], "Must start with '/'.")
        if t in ("HTTP", "HTTPS", "HTTP2", "TCP", "SSL"):
            hc.setdefault("proxyHeader", "NONE")

    def _prep_targetHttpProxies(self, body, project, stype, sname, existing):
        if not body.get("urlMap"):
            raise invalid_field("resource.urlMap", "", "A target HTTP proxy needs a URL map.")

    def _post_targetHttpProxies(self, body, refs, project, stype, sname, existing):
        for key, path in refs.items():
            if "/urlMaps/" in key:
                self._scope_match(path, key, stype, sname)

    def _prep_targetHttpsProxies(self, body, project, stype, sname, existing):
        self._prep_targetHttpProxies(body, project, stype, sname, existing)
        certs = body.get("sslCertificates") or []
        if not certs and not body.get("certificateMap"):
            raise invalid_field("resource.sslCertificates", "", "At least one SSL certificate must be specified.")
        if len(certs) > 15:
            raise invalid_field("resource.sslCertificates", len(certs), "At most 15 SSL certificates are allowed.")

    def _post_targetHttpsProxies(self, body, refs, project, stype, sname, existing):
        for key, path in refs.items():
            if "/urlMaps/" in key or "/sslCertificates/" in key:
                self._scope_match(path, key, stype, sname)
            um = self.entries.get(key)
            # compute.v1 HttpRedirectAction.httpsRedirect: "Setting this true for
            # TargetHttpsProxy is not permitted."
            if um and um.kind.coll == "urlMaps" and _uses_https_redirect(um.body):
                raise invalid_field("resource.urlMap", key, "A URL map with httpsRedirect cannot be used by a "
                                    "target HTTPS proxy.")

    def _prep_sslCertificates(self, body, project, stype, sname, existing):
        t = body.setdefault("type", "MANAGED" if body.get("managed") else "SELF_MANAGED")
        if t == "MANAGED":
            domains = (body.get("managed") or {}).get("domains") or []
            if not domains:
                raise invalid_field("resource.managed.domains", "", "A managed certificate needs domains.")
            if stype != "global":
                raise invalid_field("resource.type", t, "Managed certificates are global only.")
            body["managed"]["status"] = "PROVISIONING"
            body["managed"]["domainStatus"] = {d: "PROVISIONING" for d in domains}
            body["subjectAlternativeNames"] = list(domains)
            return
        cert, key = body.get("certificate"), body.get("privateKey")
        if not cert or not key:
            raise invalid_field("resource.certificate" if not cert else "resource.privateKey", "",
                                "A self-managed certificate needs certificate and privateKey.")
        if "PRIVATE KEY-----" not in key:
            raise invalid_field("resource.privateKey", "<redacted>", "The SSL key could not be parsed.")
        info = _decode_cert(cert)
        if info is None:
            raise invalid_field("resource.certificate", "<redacted>", "The SSL certificate could not be parsed.")
        not_after = datetime.strptime(info["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
        body["expireTime"] = not_after.astimezone(PACIFIC).isoformat(timespec="milliseconds")
        sans = [v for (k, v) in info.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
        if sans:
            body["subjectAlternativeNames"] = sans

    def _prep_forwardingRules(self, body, project, stype, sname, existing):
        scheme = body.setdefault("loadBalancingScheme", "EXTERNAL")
        body.setdefault("IPProtocol", "TCP")
        if scheme.startswith("EXTERNAL"):
            body.setdefault("networkTier", "PREMIUM")
        pr = body.get("portRange")
        if pr is not None:
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", pr)
            if not m or not (1 <= int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 65535):
                raise invalid_field("resource.portRange", pr, "Must be a port or a range 'low-high' in [1, 65535].")
            body["portRange"] = f"{m.group(1)}-{m.group(2) or m.group(1)}"
        if not body.get("target") and not body.get("backendService"):
            raise invalid_field("resource.target", "", "A forwarding rule needs a target or a backendService.")
        if existing is not None:
            return  # IPAddress cannot change after creation; keep the allocated one
        ip = body.get("IPAddress")
        addr_entry = None
        if ip:
            try:
                ipaddress.ip_address(ip)
                literal = ip
            except ValueError:
                literal = None
            if literal is None:
                ref_text = ip if "/" in ip else f"{scope_prefix(project, stype, sname)}/addresses/{ip}"
                ref = parse_ref(ref_text, project)
                if ref is None or ref.coll != "addresses":
                    raise invalid_field("resource.IPAddress", ip, "The URL is malformed.")
                addr_entry = self.entries.get(ref.key)
                if addr_entry is None:
                    raise not_found(ref.key)
                if addr_entry.creating is not None and not addr_entry.creating.finished:
                    raise not_ready(addr_entry.key)
                if (addr_entry.stype, addr_entry.sname) != (stype, sname):
                    raise invalid_field("resource.IPAddress", ip, "The address must be in the same scope (global "
                                        "or region) as the forwarding rule.")
                literal = addr_entry.body["address"]
            else:
                prefix = scope_prefix(project, stype, sname) + "/addresses/"
                addr_entry = next((a for a in self.entries.values()
                                   if a.key.startswith(prefix) and a.body.get("address") == literal), None)
                if addr_entry is None and scheme.startswith("EXTERNAL"):
                    raise invalid_field("resource.IPAddress", ip, "The specified IP address is not reserved in "
                                        "this project and scope.")
            if addr_entry is not None:
                want = "INTERNAL" if scheme.startswith("INTERNAL") else "EXTERNAL"
                if addr_entry.body.get("addressType", "EXTERNAL") != want:
                    raise invalid_field("resource.IPAddress", ip, f"A {scheme} forwarding rule needs an {want} "
                                        "address.")
            body["IPAddress"] = literal
        else:
            body["IPAddress"] = self._allocate_ip(stype, scheme.startswith("INTERNAL"), sname, project,
                                                  body.get("ipVersion") == "IPV6")
        self._pending_address = addr_entry.key if addr_entry else None

    def _post_forwardingRules(self, body, refs, project, stype, sname, existing):
        addr_key, self._pending_address = getattr(self, "_pending_address", None), None
        if existing is not None:
            addr_key = next((k for k in existing.refs if "/addresses/" in k), None)
            body["IPAddress"] = existing.body.get("IPAddress")
        if addr_key:
            refs[addr_key] = "resource.IPAddress"
        scheme = body["loadBalancingScheme"]
        target = self._ref_entry(body.get("target"), project)
        if target is not None:
            self._scope_match("resource.target", target.key, stype, sname)
            # The whole chain behind a proxy must share the load balancing scheme.
            url_map = self._ref_entry(target.body.get("urlMap"), project)
            if url_map is not None:
                for bs_key in url_map.refs:
                    bs = self.entries.get(bs_key)
                    if bs and bs.kind.coll == "backendServices" and bs.body.get("loadBalancingScheme") != scheme:
                        raise invalid_field("resource.loadBalancingScheme", scheme,
                                            f"Backend service '{bs.key}' referenced through '{url_map.key}' has "
                                            f"loadBalancingScheme {bs.body.get('loadBalancingScheme')}, which does "
                                            f"not match.")
        # [IPAddress, IPProtocol] with overlapping portRanges is a conflict
        lo, hi = _port_range(body.get("portRange"))
        prefix = scope_prefix(project, stype, sname) + "/forwardingRules/"
        for other in self.entries.values():
            if not other.key.startswith(prefix) or (existing is not None and other is existing):
                continue
            if other.name == body.get("name"):
                continue
            ob = other.body
            if ob.get("IPAddress") == body["IPAddress"] and ob.get("IPProtocol") == body["IPProtocol"]:
                olo, ohi = _port_range(ob.get("portRange"))
                if lo <= ohi and olo <= hi:
                    raise invalid_field("resource.portRange", body.get("portRange", ""),
                                        f"IP {body['IPAddress']} with protocol {body['IPProtocol']} and an overlapping "
                                        f"port range is already used by forwarding rule '{other.key}'.")

    def _allocate_ip(self, stype, internal, sname, project, v6=False) -> str:
        self._ip_counter += 1
        n = self._ip_counter
        if v6:
            return f"2600:1901:0:{n:x}::"
        if internal:
            cidr = DEFAULT_SUBNETS.get(sname or "", "10.128.0.0/20")
            net = ipaddress.ip_network(cidr)
            used = {a.body.get("address") for a in self.entries.values()}
            used |= {f.body.get("IPAddress") for f in self.entries.values()}
            for host in list(net.hosts())[1:]:
                if str(host) not in used:
                    return str(host)
            raise ApiError(400, "ipSpaceExhausted", f"No free IP in {cidr}.")
        if stype == "global":
            return f"34.117.{n // 250}.{n % 250 + 1}"
        return f"35.188.{n // 250}.{n % 250 + 1}"

    def _prep_addresses(self, body, project, stype, sname, existing):
        at = body.setdefault("addressType", "EXTERNAL")
        if at == "EXTERNAL":
            body.setdefault("networkTier", "PREMIUM")
        if stype == "global":
            body.setdefault("ipVersion", "IPV4")
        if at == "INTERNAL" and stype == "region" and not body.get("subnetwork"):
            body["subnetwork"] = f"projects/{project}/regions/{sname}/subnetworks/default"
        if body.get("address"):
            try:
                ipaddress.ip_address(body["address"])
            except ValueError:
                raise invalid_field("resource.address", body["address"], "Must be an IP address.") from None
            prefix = scope_prefix(project, stype, sname) + "/addresses/"
            for other in self.entries.values():
                if other.key.startswith(prefix) and other.body.get("address") == body["address"]:
                    raise invalid_field("resource.address", body["address"],
                                        f"IP address is already reserved by '{other.key}'.")
        else:
            body["address"] = self._allocate_ip(stype, at == "INTERNAL", sname, project,
                                                body.get("ipVersion") == "IPV6")

    def _prep_networkEndpointGroups(self, body, project, stype, sname, existing):
        t = body.setdefault("networkEndpointType", "GCE_VM_IP_PORT")
        if t in ("SERVERLESS", "PRIVATE_SERVICE_CONNECT"):
            raise invalid_field("resource.networkEndpointType", t, "This type is only supported for regional "
                                "network endpoint groups.")
        if t in ("GCE_VM_IP_PORT", "GCE_VM_IP", "NON_GCP_PRIVATE_IP_PORT") and not body.get("network"):
            body["network"] = f"projects/{project}/global/networks/default"
        dp = body.get("defaultPort")
        if dp is not None and not 1 <= dp <= 65535:
            raise invalid_field("resource.defaultPort", dp, "Port must be in [1, 65535].")

    def _post_networkEndpointGroups(self, body, refs, project, stype, sname, existing):
        for key, path in refs.items():
            if "/subnetworks/" in key and f"/regions/{ZONES[sname]}/" not in key:
                raise invalid_field(path, key, f"The subnetwork must be in region {ZONES[sname]}.")

    def _prep_firewalls(self, body, project, stype, sname, existing):
        body.setdefault("network", f"projects/{project}/global/networks/default")
        body.setdefault("direction", "INGRESS")
        body.setdefault("priority", 1000)
        body.setdefault("disabled", False)
        body.setdefault("logConfig", {"enable": False})
        if bool(body.get("allowed")) == bool(body.get("denied")):
            raise invalid_field("resource.allowed", "", "Exactly one of allowed or denied must be set.")
        if body["direction"] == "INGRESS" and not any(
                body.get(k) for k in ("sourceRanges", "sourceTags", "sourceServiceAccounts")):
            body["sourceRanges"] = ["0.0.0.0/0"]
        for k in ("sourceRanges", "destinationRanges"):
            for r in body.get(k) or []:
                try:
                    ipaddress.ip_network(r, strict=False)
                except ValueError:
                    raise invalid_field(f"resource.{k}", r, "Must be a CIDR range.") from None

    def _prep_networks(self, body, project, stype, sname, existing):
        body.setdefault("autoCreateSubnetworks", False)
        body.setdefault("routingConfig", {"routingMode": "REGIONAL"})
        body.setdefault("networkFirewallPolicyEnforcementOrder", "AFTER_CLASSIC_FIREWALL")

    def _prep_subnetworks(self, body, project, stype, sname, existing):
        if not body.get("network"):
            raise invalid_field("resource.network", "", "A subnetwork needs a network.")
        cidr = body.get("ipCidrRange")
        try:
            net = ipaddress.ip_network(cidr or "", strict=True)
        except ValueError:
            raise invalid_field("resource.ipCidrRange", cidr or "", "Must be a CIDR range.") from None
        body["gatewayAddress"] = str(net.network_address + 1)
        body.setdefault("purpose", "PRIVATE")
        body.setdefault("stackType", "IPV4_ONLY")
        body.setdefault("privateIpGoogleAccess", False)


PATH_MATCH_FIELDS = ("prefixMatch", "fullPathMatch", "regexMatch", "pathTemplateMatch")
PATH_REWRITE_FIELDS = ("pathPrefixRewrite", "pathTemplateRewrite", "regexRewrite")
TEMPLATE_VAR_RE = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?:=(\*\*?))?\}")


def _walk(obj):
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _uses_regex(body) -> bool:
    """Any regexMatch in a path, header or query parameter match."""
    return any(d.get("regexMatch") for d in _walk(body.get("pathMatchers") or []))


def _uses_https_redirect(body) -> bool:
    return any(isinstance(d.get(k), dict) and d[k].get("httpsRedirect")
               for d in _walk(body) for k in ("urlRedirect", "defaultUrlRedirect"))


def _template_variables(template: str, path: str) -> set[str]:
    """Checks a pathTemplateMatch the way compute.v1 describes it and returns its variables."""
    if not template.startswith("/") or not 1 <= len(template) <= 1024:
        raise invalid_field(path, template, "A path template must start with '/' and be 1 to 1024 characters.")
    segments = template[1:].split("/")
    operators, names = 0, set()
    for i, seg in enumerate(segments):
        m = TEMPLATE_VAR_RE.fullmatch(seg)
        if seg in ("*", "**") or m:
            operators += 1
            deep = seg == "**" or (m and m.group(2) == "**")
            if deep and i != len(segments) - 1:
                raise invalid_field(path, template, "'**' may only be the last operator of a path template.")
            if m:
                if m.group(1) in names:
                    raise invalid_field(path, template, f"Variable '{m.group(1)}' appears twice.")
                names.add(m.group(1))
        elif any(c in seg for c in "*{}="):
            raise invalid_field(path, template, f"Segment '{seg}' is neither a literal nor an operator.")
    if operators > 5:
        raise invalid_field(path, template, "At most 5 operators may appear in a path template.")
    return names


def _check_route_rule(rr: dict, path: str):
    """What compute.v1 says about one route rule's matches and rewrites, beyond the schema."""
    templates = []
    for k, m in enumerate(rr.get("matchRules") or []):
        mpath = f"{path}.matchRules[{k}]"
        set_ = [f for f in PATH_MATCH_FIELDS if m.get(f)]
        if len(set_) != 1:
            raise invalid_field(mpath, ", ".join(set_), "Precisely one of prefixMatch, fullPathMatch, regexMatch "
                                "or pathTemplateMatch must be set.")
        if m.get("ignoreCase") and m.get("regexMatch"):
            raise invalid_field(f"{mpath}.ignoreCase", True, "ignoreCase must not be used with regexMatch.")
        for f in ("prefixMatch", "fullPathMatch"):
            if m.get(f) is not None and (not m[f].startswith("/") or len(m[f]) > 1024):
                raise invalid_field(f"{mpath}.{f}", m[f], "Must start with '/' and be 1 to 1024 characters.")
        templates.append(_template_variables(m["pathTemplateMatch"], f"{mpath}.pathTemplateMatch")
                         if m.get("pathTemplateMatch") else None)
    rw = (rr.get("routeAction") or {}).get("urlRewrite") or {}
    rpath = f"{path}.routeAction.urlRewrite"
    set_ = [f for f in PATH_REWRITE_FIELDS if rw.get(f)]
    if len(set_) > 1:
        raise invalid_field(rpath, ", ".join(set_), "Only one of pathPrefixRewrite, pathTemplateRewrite or "
                            "regexRewrite may be specified.")
    for f, limit in (("hostRewrite", 255), ("pathPrefixRewrite", 1024)):
        if f in rw and not 1 <= len(rw[f]) <= limit:
            raise invalid_field(f"{rpath}.{f}", rw[f], f"The value must be from 1 to {limit} characters.")
    if rw.get("pathTemplateRewrite"):
        if not templates or any(t is None for t in templates):
            raise invalid_field(f"{rpath}.pathTemplateRewrite", rw["pathTemplateRewrite"],
                                "pathTemplateRewrite needs a pathTemplateMatch in every match rule.")
        if any(not t for t in templates):
            raise invalid_field(f"{rpath}.pathTemplateRewrite", rw["pathTemplateRewrite"],
                                "At least one variable must be specified in the path_template_match field.")
        used = set(TEMPLATE_VAR_RE.findall(rw["pathTemplateRewrite"]))
        used = {name for name, _ in used}
        for t in templates:
            missing = used - t
            if missing:
                raise invalid_field(f"{rpath}.pathTemplateRewrite", rw["pathTemplateRewrite"],
                                    f"Variables {sorted(missing)} do not exist in the path_template_match.")
    rx = rw.get("regexRewrite")
    if rx is not None and (not rx.get("pathPattern") or "pathSubstitution" not in rx):
        raise invalid_field(f"{rpath}.regexRewrite", "", "pathPattern and pathSubstitution are required.")


def _port_range(pr: str | None) -> tuple[int, int]:
    if not pr:
        return 1, 65535
    lo, _, hi = pr.partition("-")
    return int(lo), int(hi or lo)


def _decode_cert(pem: str):
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
        path = f.name
    try:
        return ssl._ssl._test_decode_cert(path)  # stdlib PEM decoder; no extra dependency
    except Exception:
        return None
    finally:
        os.unlink(path)
