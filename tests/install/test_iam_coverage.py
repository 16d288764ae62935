"""tests/install/iam_coverage.py on fixture call logs: both outcomes for AWS and GCE.

The fixture logs are what the providers' full lifecycle calls (create, update, drift, delete)
per the design; they pin terraform/aws-iam/policy.json and terraform/gcp-iam/permissions.json
to exactly that set, and show the checker failing on a call without a grant and on a grant
nothing needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import iam_coverage  # noqa: E402

ROOT = HERE.parents[1]
AWS_POLICY = ROOT / "terraform/aws-iam/policy.json"
GCP_PERMS = ROOT / "terraform/gcp-iam/permissions.json"

# What the ALB and Lattice providers call (botocore service names, as the moto ground logs them).
ALB_CALLS = {
    "elbv2": """DescribeLoadBalancers DescribeListeners DescribeListenerCertificates DescribeRules
        DescribeTargetGroups DescribeTargetGroupAttributes DescribeTargetHealth DescribeTags
        CreateLoadBalancer CreateListener CreateRule CreateTargetGroup
        ModifyListener ModifyRule ModifyTargetGroup ModifyTargetGroupAttributes DeleteLoadBalancer
        DeleteListener DeleteRule DeleteTargetGroup RegisterTargets DeregisterTargets SetRulePriorities
        SetSubnets SetSecurityGroups AddTags""",
    "ec2": """DescribeSecurityGroups CreateSecurityGroup DeleteSecurityGroup AuthorizeSecurityGroupIngress
        RevokeSecurityGroupIngress""",
    "acm": "ImportCertificate DeleteCertificate ListCertificates ListTagsForCertificate",
}
LATTICE_CALLS = {
    "vpc-lattice": """CreateServiceNetwork GetServiceNetwork ListServiceNetworks UpdateServiceNetwork
        DeleteServiceNetwork CreateServiceNetworkVpcAssociation ListServiceNetworkVpcAssociations
        DeleteServiceNetworkVpcAssociation CreateServiceNetworkServiceAssociation
        ListServiceNetworkServiceAssociations DeleteServiceNetworkServiceAssociation
        CreateService GetService ListServices UpdateService DeleteService
        CreateListener GetListener ListListeners UpdateListener DeleteListener
        CreateRule GetRule ListRules BatchUpdateRule DeleteRule
        CreateTargetGroup GetTargetGroup ListTargetGroups UpdateTargetGroup DeleteTargetGroup
        RegisterTargets DeregisterTargets ListTargets ListTagsForResource
        CreateAccessLogSubscription ListAccessLogSubscriptions UpdateAccessLogSubscription
        DeleteAccessLogSubscription PutAuthPolicy GetAuthPolicy DeleteAuthPolicy""",
    # The SDK's credential chain (no permission needed) shows up in real logs too.
    "sts": "GetCallerIdentity AssumeRoleWithWebIdentity",
}


def gce_methods() -> list[str]:
    """The GCE methods the gcp provider uses, global and regional flavours."""
    m: list[str] = []

    def add(colls: list[str], verbs: str) -> None:
        m.extend(f"compute.{c}.{v}" for c in colls for v in verbs.split())

    add(["addresses", "globalAddresses"], "insert get list delete setLabels")
    add(["healthChecks", "regionHealthChecks"], "insert list update delete")
    add(["backendServices", "regionBackendServices"], "insert get list update delete")
    add(["urlMaps", "regionUrlMaps"], "insert get list update delete")
    add(["targetHttpProxies", "regionTargetHttpProxies"], "insert list delete setUrlMap")
    add(["targetHttpProxies"], "get patch")
    add(["targetHttpsProxies", "regionTargetHttpsProxies"], "insert get list delete patch setUrlMap setSslCertificates")
    add(["sslCertificates", "regionSslCertificates"], "insert list delete")
    add(["forwardingRules", "globalForwardingRules"], "insert get list delete setLabels setTarget")
    add(["networkEndpointGroups"], "insert list aggregatedList delete attachNetworkEndpoints detachNetworkEndpoints listNetworkEndpoints")
    add(["firewalls"], "insert list update delete")
    add(["globalOperations", "regionOperations", "zoneOperations"], "get")
    return m


def write_log(path: Path, lines: list[dict]) -> Path:
    with path.open("a") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
    return path


def aws_lines(calls: dict[str, str]) -> list[dict]:
    return [{"service": s, "action": a, "status": 200, "method": "POST", "path": "/", "ts": 0} for s, ops in calls.items() for a in ops.split()]


def gce_lines(methods: list[str]) -> list[dict]:
    return [{"method": m, "status": 200, "http": "GET", "path": "/compute/v1/..."} for m in methods]


def run(*args: str) -> tuple[int, str]:
    p = subprocess.run([sys.executable, str(HERE / "iam_coverage.py"), *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture
def full_log(tmp_path: Path) -> Path:
    """One file with both grounds' lines, as when they share GROUND_CALL_LOG."""
    return write_log(tmp_path / "calls.jsonl", aws_lines(ALB_CALLS) + gce_lines(gce_methods()) + aws_lines(LATTICE_CALLS))


# --------------------------------------------------------------------------------- passing
def test_full_lifecycle_is_exactly_covered(full_log: Path) -> None:
    rc, out = run("check", "--log", str(full_log))
    assert rc == 0, out
    assert "iam_coverage: ok" in out
    # The one grant no call shows, explained in iam-extra-allowed.txt.
    assert "iam:CreateServiceLinkedRole granted without a logged call, allowed:" in out


def test_policy_files_are_clean() -> None:
    patterns, problems = iam_coverage.load_aws_policy(AWS_POLICY)
    assert not problems
    assert not [p for p in patterns if "*" in p or "?" in p], "no wildcard actions"
    perms, problems = iam_coverage.load_gcp_permissions(GCP_PERMS)
    assert not problems
    assert perms == sorted(perms)


def test_mapping_exceptions() -> None:
    assert iam_coverage.aws_required("vpc-lattice", "BatchUpdateRule") == ["vpc-lattice:UpdateRule"]
    assert iam_coverage.aws_required("elbv2", "CreateRule") == ["elasticloadbalancing:CreateRule", "elasticloadbalancing:AddTags"]
    assert iam_coverage.aws_required("sts", "GetCallerIdentity") == []
    assert iam_coverage.aws_required("dynamodb", "PutItem") is None
    assert iam_coverage.gce_required("compute.urlMaps.insert") == ["compute.urlMaps.create", "compute.backendServices.use"]
    assert iam_coverage.gce_required("compute.urlMaps.patch")[0] == "compute.urlMaps.update"
    assert iam_coverage.gce_required("compute.globalOperations.wait") == ["compute.globalOperations.get"]
    assert iam_coverage.gce_required("compute.networkEndpointGroups.attachNetworkEndpoints") == [
        "compute.networkEndpointGroups.attachNetworkEndpoints",
        "compute.instances.use",
    ]
    assert iam_coverage.gce_required("compute.forwardingRules.aggregatedList") == ["compute.forwardingRules.list"]
    assert iam_coverage.gce_required("storage.objects.get") is None


# --------------------------------------------------------------------------------- failing
def test_call_without_a_grant_fails(full_log: Path) -> None:
    write_log(full_log, aws_lines({"elbv2": "AddListenerCertificates"}))
    rc, out = run("check", "--log", str(full_log))
    assert rc == 1, out
    assert "FAIL: aws: elasticloadbalancing:AddListenerCertificates is needed (by elbv2:AddListenerCertificates) but not granted" in out


def test_gce_method_without_a_permission_fails(full_log: Path) -> None:
    write_log(full_log, gce_lines(["compute.instances.insert"]))
    rc, out = run("check", "--log", str(full_log))
    assert rc == 1, out
    assert "FAIL: gcp: compute.instances.create is needed (by compute.instances.insert) but not granted" in out


def test_dependent_permission_missing_fails(full_log: Path, tmp_path: Path) -> None:
    perms = [p for p in json.loads(GCP_PERMS.read_text()) if p != "compute.backendServices.use"]
    (tmp_path / "perms.json").write_text(json.dumps(perms))
    rc, out = run("check", "--log", str(full_log), "--gcp-permissions", str(tmp_path / "perms.json"))
    assert rc == 1, out
    assert "FAIL: gcp: compute.backendServices.use is needed (by compute.urlMaps." in out


def test_unexplained_extra_grant_fails(full_log: Path, tmp_path: Path) -> None:
    policy = json.loads(AWS_POLICY.read_text())
    policy["Statement"][0]["Action"].append("elasticloadbalancing:ModifyListenerAttributes")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    rc, out = run("check", "--log", str(full_log), "--aws-policy", str(tmp_path / "policy.json"))
    assert rc == 1, out
    assert "FAIL: aws: elasticloadbalancing:ModifyListenerAttributes is granted but no logged call needs it" in out
    assert "hint:" in out

    perms = json.loads(GCP_PERMS.read_text()) + ["compute.instances.delete"]
    (tmp_path / "perms.json").write_text(json.dumps(perms))
    rc, out = run("check", "--log", str(full_log), "--gcp-permissions", str(tmp_path / "perms.json"))
    assert rc == 1 and "FAIL: gcp: compute.instances.delete is granted but no logged call needs it" in out, out


def test_extra_grant_with_a_reason_passes_and_without_one_fails(full_log: Path, tmp_path: Path) -> None:
    policy = json.loads(AWS_POLICY.read_text())
    policy["Statement"][0]["Action"].append("elasticloadbalancing:ModifyListenerAttributes")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    allowed = tmp_path / "extra.txt"
    allowed.write_text(
        (HERE / "iam-extra-allowed.txt").read_text() + "elasticloadbalancing:ModifyListenerAttributes  needed by the next release\n"
    )
    rc, out = run("check", "--log", str(full_log), "--aws-policy", str(tmp_path / "policy.json"), "--extra-allowed", str(allowed))
    assert rc == 0, out
    allowed.write_text((HERE / "iam-extra-allowed.txt").read_text() + "elasticloadbalancing:ModifyListenerAttributes\n")
    rc, out = run("check", "--log", str(full_log), "--aws-policy", str(tmp_path / "policy.json"), "--extra-allowed", str(allowed))
    assert rc == 1 and "has no reason" in out, out


def test_stale_allow_list_entry_fails(full_log: Path, tmp_path: Path) -> None:
    allowed = tmp_path / "extra.txt"
    allowed.write_text((HERE / "iam-extra-allowed.txt").read_text() + "ec2:RunInstances  once needed\n")
    rc, out = run("check", "--log", str(full_log), "--extra-allowed", str(allowed))
    assert rc == 1 and "ec2:RunInstances is not granted by any policy any more" in out, out


def test_unknown_calls_fail_unless_allowed(full_log: Path) -> None:
    write_log(full_log, [{"method": "unknown", "status": 404}, {"service": "dynamodb", "action": "PutItem"}])
    rc, out = run("check", "--log", str(full_log))
    assert rc == 1 and "cannot tell which permission 'unknown'" in out and "'dynamodb:PutItem'" in out, out
    rc, out = run("check", "--log", str(full_log), "--allow-unknown")
    assert rc == 0, out


def test_empty_log_is_not_a_pass(tmp_path: Path) -> None:
    log = write_log(tmp_path / "empty.jsonl", [])
    rc, out = run("check", "--log", str(log))
    assert rc == 1 and "aws: no calls in the logs" in out and "gcp: no calls in the logs" in out, out


# ------------------------------------------------------------------- selecting cloudgate's calls
def test_window_counts_only_calls_after_the_mark(tmp_path: Path) -> None:
    log = write_log(tmp_path / "calls.jsonl", aws_lines({"ec2": "RunInstances"}))  # a fixture's setup call
    rc, mark = run("mark", str(log))
    assert rc == 0 and mark.strip() == f"{log}@{log.stat().st_size}"
    write_log(log, aws_lines(ALB_CALLS) + aws_lines(LATTICE_CALLS))
    rc, end = run("mark", str(log))
    write_log(log, aws_lines({"ec2": "TerminateInstances"}))  # after the window
    window = f"{mark.strip()}-{end.strip().rsplit('@', 1)[1]}"
    rc, out = run("check", "--clouds", "aws", "--log", window)
    assert rc == 0, out
    rc, out = run("check", "--clouds", "aws", "--log", str(log))
    assert rc == 1 and "ec2:RunInstances is needed" in out and "ec2:TerminateInstances is needed" in out, out


def test_where_filter(tmp_path: Path) -> None:
    lines = [dict(line, user_agent="aws-sdk-rust/1 app/cloudgate") for line in aws_lines(ALB_CALLS) + aws_lines(LATTICE_CALLS)]
    lines.append({"service": "ec2", "action": "CreateVpc", "user_agent": "Boto3/1.43 pytest"})
    log = write_log(tmp_path / "calls.jsonl", lines)
    rc, out = run("check", "--clouds", "aws", "--log", str(log), "--where", "user_agent=app/cloudgate")
    assert rc == 0, out
    rc, out = run("check", "--clouds", "aws", "--log", str(log))
    assert rc == 1 and "ec2:CreateVpc" in out, out


def test_unused_scope_limits_the_least_privilege_check(tmp_path: Path) -> None:
    # Only the ALB provider's calls logged (Lattice cloud code not written yet): coverage holds,
    # and the unused check is limited to the ALB services.
    log = write_log(tmp_path / "alb.jsonl", aws_lines(ALB_CALLS))
    rc, out = run("check", "--clouds", "aws", "--log", str(log))
    assert rc == 1 and "vpc-lattice:CreateService is granted but no logged call needs it" in out, out
    rc, out = run("check", "--clouds", "aws", "--log", str(log), "--unused-scope", "elasticloadbalancing:,ec2:,acm:,iam:")
    assert rc == 0, out
    rc, out = run("check", "--clouds", "aws", "--log", str(log), "--unused-scope", "")
    assert rc == 0, out


def test_bad_input_exits_2(tmp_path: Path) -> None:
    rc, out = run("check", "--log", str(tmp_path / "missing.jsonl"))
    assert rc == 2 and "no such call log" in out, out
    rc, out = run("check", "--clouds", "azure", "--log", str(tmp_path / "missing.jsonl"))
    assert rc == 2, out
