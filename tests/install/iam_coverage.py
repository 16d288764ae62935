#!/usr/bin/env python3
"""Checks cloudgate's cloud IAM against the calls its code actually makes.

Inputs are the call logs the test ground writes (one JSON object per line, `GROUND_CALL_LOG`):

* AWS (tests/ground/aws, moto): ``{"service": "elbv2", "action": "CreateRule", "status": 200, ...}``
* GCE (tests/ground/gce fake):  ``{"method": "compute.urlMaps.patch", "status": 200, ...}``

A file may hold both kinds (the two grounds can share one GROUND_CALL_LOG); each line is
classified by its fields. The check:

1. every AWS call is allowed by terraform/aws-iam/policy.json, and every GCE call's permissions
   are in terraform/gcp-iam/permissions.json (coverage: a missing grant is an AccessDenied in
   production that no local test would show);
2. every grant is needed by some logged call, or is listed with a reason in
   tests/install/iam-extra-allowed.txt (least privilege); `--unused-scope` limits this to some
   services while a provider's cloud code is still partial.

Only cloudgate's own calls may be counted, not those the tests make to set up fixtures or
that the ground's own test suites make. Two ways to select them, combinable:

* a byte window per file: ``--log FILE@START`` or ``FILE@START-END`` reads only the lines
  written after byte START (and before END). ``iam_coverage.py mark FILE`` prints ``FILE@SIZE``:
  run it before the suites that exercise the controller/providers, and pass its output (and the
  size after, for an END) to ``check``;
* ``--where KEY=REGEX``: keep only entries whose field KEY matches REGEX (an entry without KEY
  does not match), e.g. ``--where user_agent=cloudgate`` once the ground logs the User-Agent.

How a logged call becomes IAM actions/permissions (the exceptions are in the tables below):

* AWS: ``<prefix>:<Action>`` with the botocore service name mapped to its IAM prefix
  (elbv2 -> elasticloadbalancing, vpc-lattice, ec2, acm, resourcegroupstaggingapi -> tag).
  Calls that tag on create also need the tagging action (cloudgate tags everything it creates);
  BatchUpdateRule is authorized as vpc-lattice:UpdateRule; sts:GetCallerIdentity and
  AssumeRoleWithWebIdentity need no permission.
* GCE: method ``compute.<collection>.<verb>`` -> permission ``compute.<collection>.<verb'>`` with
  insert -> create, patch/update -> update, aggregatedList -> list, operations' wait -> get,
  listNetworkEndpoints -> networkEndpointGroups.get; a method that references other resources
  also needs their ``use`` permission (a URL map uses backend services, a forwarding rule its
  target proxy and address, ...), listed in GCE_DEPENDENT.

Exit status: 0 all good, 1 a check failed, 2 bad input (missing file, unreadable policy).
Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AWS_POLICY = ROOT / "terraform/aws-iam/policy.json"
DEFAULT_GCP_PERMISSIONS = ROOT / "terraform/gcp-iam/permissions.json"
DEFAULT_EXTRA_ALLOWED = ROOT / "tests/install/iam-extra-allowed.txt"

# botocore service name (what the moto ground logs) -> IAM service prefix.
AWS_PREFIX = {
    "elbv2": "elasticloadbalancing",
    "elb": "elasticloadbalancing",
    "vpc-lattice": "vpc-lattice",
    "ec2": "ec2",
    "acm": "acm",
    "resourcegroupstaggingapi": "tag",
    "sts": "sts",
    "iam": "iam",
}

# Calls that need no IAM permission of the caller.
AWS_NO_PERMISSION = {
    ("sts", "GetCallerIdentity"),  # always allowed
    ("sts", "AssumeRoleWithWebIdentity"),  # IRSA token exchange: the role's trust policy decides
}

# API operation -> the IAM actions it is authorized as, where that is not just prefix:Operation.
AWS_ACTION_OVERRIDES = {
    ("vpc-lattice", "BatchUpdateRule"): ["vpc-lattice:UpdateRule"],
}

# Extra IAM actions an operation needs because cloudgate always tags what it creates (tag on
# create is authorized as the tagging action too).
_TAGGED_CREATES = {
    "elbv2": (["CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "CreateRule"], "elasticloadbalancing:AddTags"),
    "ec2": (["CreateSecurityGroup"], "ec2:CreateTags"),
    "acm": (["ImportCertificate"], "acm:AddTagsToCertificate"),
    "vpc-lattice": (
        [
            "CreateServiceNetwork",
            "CreateServiceNetworkVpcAssociation",
            "CreateServiceNetworkServiceAssociation",
            "CreateService",
            "CreateListener",
            "CreateRule",
            "CreateTargetGroup",
        ],
        "vpc-lattice:TagResource",
    ),
}
AWS_DEPENDENT = {(svc, op): [tag] for svc, (ops, tag) in _TAGGED_CREATES.items() for op in ops}

# GCE method verb -> permission verb, where they differ.
GCE_VERB = {"insert": "create", "patch": "update", "update": "update", "aggregatedList": "list"}
# Method -> permission, where the collection or verb changes in other ways.
GCE_METHOD_OVERRIDES = {
    "compute.globalOperations.wait": "compute.globalOperations.get",
    "compute.regionOperations.wait": "compute.regionOperations.get",
    "compute.zoneOperations.wait": "compute.zoneOperations.get",
    "compute.networkEndpointGroups.listNetworkEndpoints": "compute.networkEndpointGroups.get",
}

_REGIONAL_PROXY_USE = ["compute.regionTargetHttpProxies.use", "compute.regionTargetHttpsProxies.use"]
_GLOBAL_PROXY_USE = ["compute.targetHttpProxies.use", "compute.targetHttpsProxies.use"]
# Method -> the permissions on *referenced* resources it needs besides its own.
GCE_DEPENDENT = {
    # URL maps point at backend services.
    "compute.urlMaps.insert": ["compute.backendServices.use"],
    "compute.urlMaps.patch": ["compute.backendServices.use"],
    "compute.urlMaps.update": ["compute.backendServices.use"],
    "compute.regionUrlMaps.insert": ["compute.regionBackendServices.use"],
    "compute.regionUrlMaps.patch": ["compute.regionBackendServices.use"],
    "compute.regionUrlMaps.update": ["compute.regionBackendServices.use"],
    # Backend services point at health checks and NEGs.
    "compute.backendServices.insert": ["compute.healthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    "compute.backendServices.patch": ["compute.healthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    "compute.backendServices.update": ["compute.healthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    "compute.regionBackendServices.insert": ["compute.regionHealthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    "compute.regionBackendServices.patch": ["compute.regionHealthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    "compute.regionBackendServices.update": ["compute.regionHealthChecks.useReadOnly", "compute.networkEndpointGroups.use"],
    # Proxies point at URL maps (and certificates).
    "compute.targetHttpProxies.insert": ["compute.urlMaps.use"],
    "compute.targetHttpProxies.setUrlMap": ["compute.urlMaps.use"],
    "compute.targetHttpsProxies.insert": ["compute.urlMaps.use", "compute.sslCertificates.get"],
    "compute.targetHttpsProxies.setUrlMap": ["compute.urlMaps.use"],
    "compute.targetHttpsProxies.setSslCertificates": ["compute.sslCertificates.get"],
    "compute.regionTargetHttpProxies.insert": ["compute.regionUrlMaps.use"],
    "compute.regionTargetHttpProxies.setUrlMap": ["compute.regionUrlMaps.use"],
    "compute.regionTargetHttpsProxies.insert": ["compute.regionUrlMaps.use", "compute.regionSslCertificates.get"],
    "compute.regionTargetHttpsProxies.setUrlMap": ["compute.regionUrlMaps.use"],
    "compute.regionTargetHttpsProxies.setSslCertificates": ["compute.regionSslCertificates.get"],
    # Forwarding rules point at a proxy and an address (internal ones at a network/subnetwork).
    "compute.globalForwardingRules.insert": _GLOBAL_PROXY_USE + ["compute.globalAddresses.use"],
    "compute.globalForwardingRules.setTarget": _GLOBAL_PROXY_USE,
    "compute.forwardingRules.insert": _REGIONAL_PROXY_USE + ["compute.addresses.use", "compute.networks.use", "compute.subnetworks.use"],
    "compute.forwardingRules.setTarget": _REGIONAL_PROXY_USE,
    # NEGs live in a network; endpoints are VM (node) IP:ports.
    "compute.networkEndpointGroups.insert": ["compute.networks.use", "compute.subnetworks.use"],
    "compute.networkEndpointGroups.attachNetworkEndpoints": ["compute.instances.use"],
    # Firewall rules (load balancer health check ranges to the nodes) change the network.
    "compute.firewalls.insert": ["compute.networks.updatePolicy"],
    "compute.firewalls.patch": ["compute.networks.updatePolicy"],
    "compute.firewalls.update": ["compute.networks.updatePolicy"],
    "compute.firewalls.delete": ["compute.networks.updatePolicy"],
}


class InputError(Exception):
    """Bad command-line input or unreadable file (exit 2)."""


@dataclass(frozen=True)
class Call:
    cloud: str  # "aws" or "gcp"
    name: str  # "elbv2:CreateRule" or "compute.urlMaps.patch"
    source: str  # file:line


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unused: int = 0


# ------------------------------------------------------------------------------------- logs
def parse_log_spec(spec: str) -> tuple[Path, int, int | None]:
    """FILE, FILE@START or FILE@START-END (byte offsets)."""
    m = re.fullmatch(r"(.+?)@(\d+)(?:-(\d+))?", spec)
    if not m:
        return Path(spec), 0, None
    start, end = int(m.group(2)), (int(m.group(3)) if m.group(3) else None)
    if end is not None and end < start:
        raise InputError(f"{spec}: window end before start")
    return Path(m.group(1)), start, end


def read_calls(specs: Iterable[str], where: list[tuple[str, re.Pattern[str]]]) -> tuple[list[Call], list[str]]:
    calls: list[Call] = []
    problems: list[str] = []
    for spec in specs:
        path, start, end = parse_log_spec(spec)
        if not path.is_file():
            raise InputError(f"{path}: no such call log")
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read() if end is None else fh.read(end - start)
        if start and not data.startswith(b"{") and data:
            # A window must start at a line boundary (mark gives the file size, which is one).
            raise InputError(f"{spec}: byte {start} is not the start of a line")
        for n, raw in enumerate(data.decode("utf-8").splitlines(), 1):
            where_ = f"{path}@{start}:{n}"
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError as err:
                problems.append(f"{where_}: not JSON ({err})")
                continue
            if not all(k in entry and rx.search(str(entry[k])) for k, rx in where):
                continue
            if "service" in entry and "action" in entry:
                calls.append(Call("aws", f"{entry['service']}:{entry['action']}", where_))
            elif "method" in entry:
                calls.append(Call("gcp", str(entry["method"]), where_))
            else:
                problems.append(f"{where_}: neither an AWS (service/action) nor a GCE (method) call: {raw[:120]}")
    return calls, problems


# ------------------------------------------------------------------------------- AWS mapping
def aws_required(service: str, action: str) -> list[str] | None:
    """IAM actions one AWS call needs; None when the service is unknown."""
    if (service, action) in AWS_NO_PERMISSION:
        return []
    prefix = AWS_PREFIX.get(service)
    if prefix is None:
        return None
    actions = AWS_ACTION_OVERRIDES.get((service, action), [f"{prefix}:{action}"])
    return actions + AWS_DEPENDENT.get((service, action), [])


def load_aws_policy(path: Path) -> tuple[list[str], list[str]]:
    """(allowed action patterns, problems) from an IAM policy document."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: {err}") from err
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise InputError(f"{path}: no Statement list")
    allowed: list[str] = []
    unconditioned: list[str] = []
    problems: list[str] = []
    for i, st in enumerate(statements):
        sid = st.get("Sid", f"#{i}")
        if "NotAction" in st:
            problems.append(f"{path.name} statement {sid}: NotAction grants everything else; not allowed")
        if st.get("Effect") != "Allow":
            problems.append(f"{path.name} statement {sid}: only Allow statements are expected (Effect {st.get('Effect')!r})")
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        allowed.extend(a for a in actions if a not in allowed)
        if "Condition" not in st:
            unconditioned.extend(actions)
    # The same action under different conditions is fine; granted twice outright is a slip.
    dupes = sorted({a for a in unconditioned if unconditioned.count(a) > 1})
    if dupes:
        problems.append(f"{path.name}: actions granted twice: {', '.join(dupes)}")
    return allowed, problems


def action_allowed(action: str, patterns: list[str]) -> bool:
    # IAM action names are case-insensitive; `*` and `?` are wildcards.
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


# ------------------------------------------------------------------------------- GCE mapping
def gce_required(method: str) -> list[str] | None:
    """Permissions one GCE method needs; None when it is not a compute method id."""
    parts = method.split(".")
    if len(parts) != 3 or parts[0] != "compute":
        return None
    own = GCE_METHOD_OVERRIDES.get(method)
    if own is None:
        _, coll, verb = parts
        own = f"compute.{coll}.{GCE_VERB.get(verb, verb)}"
    return [own] + GCE_DEPENDENT.get(method, [])


def load_gcp_permissions(path: Path) -> tuple[list[str], list[str]]:
    try:
        perms = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: {err}") from err
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise InputError(f"{path}: expected a JSON list of permission names")
    problems = []
    dupes = sorted({p for p in perms if perms.count(p) > 1})
    if dupes:
        problems.append(f"{path.name}: permissions listed twice: {', '.join(dupes)}")
    bad = [p for p in perms if not re.fullmatch(r"[a-z]+\.[A-Za-z]+\.[A-Za-z]+", p)]
    if bad:
        problems.append(f"{path.name}: not IAM permission names (custom roles take no wildcards): {', '.join(bad)}")
    return perms, problems


# ------------------------------------------------------------------------------ allow-list
def load_extra_allowed(path: Path | None) -> tuple[dict[str, str], list[str]]:
    """`PERMISSION  reason...` per line; # comments. Every entry needs a reason."""
    if path is None:
        return {}, []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise InputError(f"{path}: {err}") from err
    extra: dict[str, str] = {}
    problems = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        perm, _, reason = line.partition(" ")
        if not reason.strip():
            problems.append(f"{path.name}:{n}: {perm} has no reason")
        extra[perm] = reason.strip()
    return extra, problems


# ----------------------------------------------------------------------------------- check
def check(
    calls: list[Call],
    aws_patterns: list[str] | None,
    gcp_perms: list[str] | None,
    extra: dict[str, str],
    clouds: set[str],
    unused_scope: list[str] | None,
    allow_unknown: bool = False,
) -> Report:
    r = Report()
    seen: dict[str, set[str]] = {"aws": set(), "gcp": set()}
    needed: dict[str, dict[str, str]] = {"aws": {}, "gcp": {}}  # permission -> first call needing it
    for c in calls:
        if c.cloud not in clouds:
            continue
        seen[c.cloud].add(c.name)
        if c.cloud == "aws":
            service, _, action = c.name.partition(":")
            req = aws_required(service, action) if action not in ("", "Unknown") else None
        else:
            req = gce_required(c.name) if c.name != "unknown" else None
        if req is None:
            msg = f"{c.source}: cannot tell which permission {c.name!r} needs (unknown service or unrouted request)"
            (r.warnings if allow_unknown else r.errors).append(msg)
            continue
        for p in req:
            needed[c.cloud].setdefault(p, c.name)

    grants = {"aws": aws_patterns or [], "gcp": gcp_perms or []}
    for cloud in sorted(clouds):
        if not seen[cloud]:
            r.errors.append(f"{cloud}: no calls in the logs (wrong file, window or --where filter?)")
            continue
        r.notes.append(f"{cloud}: {len(seen[cloud])} distinct calls need {len(needed[cloud])} permissions")
        # 1. coverage
        for perm, by in sorted(needed[cloud].items()):
            ok = action_allowed(perm, grants[cloud]) if cloud == "aws" else perm in grants[cloud]
            if not ok:
                where = "terraform/aws-iam/policy.json" if cloud == "aws" else "terraform/gcp-iam/permissions.json"
                r.errors.append(f"{cloud}: {perm} is needed (by {by}) but not granted by {where}")
        # 2. least privilege
        if unused_scope is not None and not unused_scope:
            continue  # --unused-scope '': coverage only
        for g in grants[cloud]:
            if unused_scope and not any(g.lower().startswith(s.lower()) for s in unused_scope):
                continue
            used = any(fnmatch.fnmatchcase(p.lower(), g.lower()) for p in needed[cloud]) if cloud == "aws" else g in needed[cloud]
            if used:
                continue
            if g in extra:
                r.notes.append(f"{cloud}: {g} granted without a logged call, allowed: {extra[g]}")
            else:
                r.errors.append(f"{cloud}: {g} is granted but no logged call needs it")
                r.unused += 1
    # Allow-list entries must still be granted somewhere (keeps the list short and true).
    all_grants = set(grants["aws"]) | set(grants["gcp"])
    for g in sorted(extra):
        if g not in all_grants:
            r.errors.append(f"iam-extra-allowed.txt: {g} is not granted by any policy any more; remove the entry")
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("mark", help="print FILE@SIZE: the start of a window over a growing call log")
    mk.add_argument("file")
    ck = sub.add_parser("check", help="check the IAM policies against call logs")
    ck.add_argument("--log", action="append", default=[], metavar="FILE[@START[-END]]",
                    help="call log (AWS and/or GCE lines), optionally a byte window; repeatable")
    ck.add_argument("--aws-log", action="append", default=[], metavar="FILE[@START[-END]]", help="same as --log")
    ck.add_argument("--gce-log", action="append", default=[], metavar="FILE[@START[-END]]", help="same as --log")
    ck.add_argument("--where", action="append", default=[], metavar="KEY=REGEX",
                    help="count only log entries whose KEY matches REGEX; repeatable (all must match)")
    ck.add_argument("--clouds", default="aws,gcp", help="which to check: aws, gcp or aws,gcp (default)")
    ck.add_argument("--aws-policy", type=Path, default=DEFAULT_AWS_POLICY)
    ck.add_argument("--gcp-permissions", type=Path, default=DEFAULT_GCP_PERMISSIONS)
    ck.add_argument("--extra-allowed", type=Path, default=DEFAULT_EXTRA_ALLOWED)
    ck.add_argument("--unused-scope", default=None, metavar="PREFIX,...",
                    help="check only these grants for being unused, by prefix (e.g. elasticloadbalancing:,ec2:,acm:); "
                         "'' turns the unused check off; default: every grant")
    ck.add_argument("--allow-unknown", action="store_true", help="warn instead of fail on calls whose permission is unknown")
    args = ap.parse_args(argv)

    if args.cmd == "mark":
        p = Path(args.file)
        print(f"{p}@{p.stat().st_size if p.exists() else 0}")
        return 0

    try:
        clouds = {c.strip() for c in args.clouds.split(",") if c.strip()}
        if not clouds or clouds - {"aws", "gcp"}:
            raise InputError(f"--clouds {args.clouds!r}: expected aws, gcp or aws,gcp")
        where = []
        for w in args.where:
            k, sep, rx = w.partition("=")
            if not sep or not k:
                raise InputError(f"--where {w!r}: expected KEY=REGEX")
            where.append((k, re.compile(rx)))
        specs = args.log + args.aws_log + args.gce_log
        if not specs:
            raise InputError("no call log given (--log FILE)")
        calls, log_problems = read_calls(specs, where)
        aws_patterns, aws_problems = load_aws_policy(args.aws_policy)
        gcp_perms, gcp_problems = load_gcp_permissions(args.gcp_permissions)
        extra, extra_problems = load_extra_allowed(args.extra_allowed)
    except InputError as err:
        print(f"iam_coverage: {err}", file=sys.stderr)
        return 2

    scope = None if args.unused_scope is None else [s for s in args.unused_scope.split(",") if s]
    report = check(calls, aws_patterns, gcp_perms, extra, clouds, scope, args.allow_unknown)
    report.errors[:0] = log_problems + aws_problems + gcp_problems + extra_problems
    for n in report.notes:
        print(f"note: {n}")
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"FAIL: {e}")
    if report.unused:
        print("hint: remove grants nothing needs, or list each with a reason in tests/install/iam-extra-allowed.txt "
              "(--unused-scope narrows the check while a provider's cloud code is partial)")
    if report.errors:
        print(f"iam_coverage: {len(report.errors)} problem(s)")
        return 1
    print("iam_coverage: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
