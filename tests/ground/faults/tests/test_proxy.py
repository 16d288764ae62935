"""The fault proxy: forwards untouched at rate 0, injects each fault in the protocol its client
speaks (checked with botocore's own parsers and retry classification), counts calls by
operation, and validates its control API."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from faultproxy.faults import GCE, Request, operation

def client(service: str, url: str, read_timeout: float = 3):
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=read_timeout, connect_timeout=3)
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=config)


def test_forwards_untouched_and_counts_by_operation(proxy, upstream):
    ec2 = client("ec2", proxy.aws)
    # The recording upstream answers {}-ish JSON, which botocore cannot parse as EC2 XML; what
    # matters is that the request went through unchanged.
    with pytest.raises(Exception):
        ec2.describe_vpcs()
    assert upstream.seen and upstream.seen[-1][0] == "POST" and b"Action=DescribeVpcs" in upstream.seen[-1][2]
    req = urllib.request.Request(proxy.gce + "/compute/v1/projects/p1/global/urlMaps/um1", method="GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["path"] == "/compute/v1/projects/p1/global/urlMaps/um1"
    status, stats = proxy.control("/_faults/stats")
    assert status == 200
    assert stats["calls"]["aws"] == {"ec2:DescribeVpcs": 1}
    assert stats["calls"]["gce"] == {"gce:GET /compute/v1/projects/{project}/global/urlMaps/{urlMap}": 1}
    assert stats["faults"] == {"throttle": 0, "error5xx": 0, "timeout": 0, "drop": 0}
    status, stats = proxy.control("/_faults/reset", {})
    assert status == 200 and stats["total"] == 0


LIST = {
    "ec2": lambda c: c.describe_vpcs(),
    "elbv2": lambda c: c.describe_load_balancers(),
    "acm": lambda c: c.list_certificates(),
    "vpc-lattice": lambda c: c.list_services(),
}


@pytest.mark.parametrize(
    ("fault", "service", "code", "status"),
    [
        ("throttle", "ec2", "RequestLimitExceeded", 503),
        ("throttle", "elbv2", "Throttling", 400),
        ("throttle", "acm", "ThrottlingException", 400),
        ("throttle", "vpc-lattice", "ThrottlingException", 429),
        ("error5xx", "ec2", "InternalError", 500),
        ("error5xx", "elbv2", "ServiceUnavailable", 503),
        ("error5xx", "acm", "InternalFailure", 500),
        ("error5xx", "vpc-lattice", "InternalServerException", 500),
    ],
)
def test_errors_in_each_aws_protocol(proxy, upstream, fault, service, code, status):
    proxy.configure(**{fault: 1.0})
    with pytest.raises(ClientError) as e:
        LIST[service](client(service, proxy.aws))
    err = e.value.response
    assert err["Error"]["Code"] == code
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status
    # botocore's standard retry mode classifies throttling by the same code list as the Rust SDK.
    assert ThrottledRetryableChecker().is_retryable(RetryContext(attempt_number=1, parsed_response=err)) == (fault == "throttle")
    assert upstream.seen == [], "an injected error must not reach the backend"


def test_gce_rate_limit_and_5xx(proxy, upstream):
    proxy.configure(throttle=1.0)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(proxy.gce + "/compute/v1/projects/p/global/backendServices", timeout=5)
    assert e.value.code == 429
    body = json.load(e.value)["error"]
    assert body["code"] == 429 and body["errors"][0]["reason"] == "rateLimitExceeded" and body["status"] == "RESOURCE_EXHAUSTED"
    proxy.configure(error5xx=1.0)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(proxy.gce + "/compute/v1/projects/p/global/backendServices", timeout=5)
    assert e.value.code == 503 and json.load(e.value)["error"]["errors"][0]["reason"] == "backendError"
    assert upstream.seen == []
    _, stats = proxy.control("/_faults/stats")
    assert stats["faults"]["throttle"] == 1 and stats["faults"]["error5xx"] == 1
    assert stats["faults_by_operation"] == {
        "gce:GET /compute/v1/projects/{project}/global/backendServices": {"throttle": 1, "error5xx": 1}}


def test_timeout_holds_the_answer_after_the_call_took_effect(proxy, upstream):
    proxy.configure(timeout=1.0, hold_seconds=5)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        client("vpc-lattice", proxy.aws, read_timeout=1).list_services()
    assert time.monotonic() - started < 4
    # The call reached the backend although the client never got the answer.
    assert [seen[1] for seen in upstream.seen] == ["/services"]


def test_drop_resets_the_connection(proxy, upstream):
    proxy.configure(drop=1.0)
    for _ in range(6):
        conn = http.client.HTTPConnection("127.0.0.1", int(proxy.aws.rsplit(":", 1)[1]), timeout=5)
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, socket.error)):
            conn.request("GET", "/services")
            conn.getresponse()
        conn.close()
    # Half the drops happen after forwarding (seed 7 draws both kinds within six calls).
    assert 0 < len(upstream.seen) < 6
    _, stats = proxy.control("/_faults/stats")
    assert stats["faults"]["drop"] == 6


def test_rates_are_drawn_at_the_configured_frequency(proxy, upstream):
    proxy.configure(throttle=0.3)
    gce = http.client.HTTPConnection("127.0.0.1", int(proxy.gce.rsplit(":", 1)[1]), timeout=5)
    codes = []
    for _ in range(400):
        gce.request("GET", "/compute/v1/projects/p/zones/z/networkEndpointGroups")
        r = gce.getresponse()
        r.read()
        codes.append(r.status)
    throttled = codes.count(429)
    assert 80 <= throttled <= 160, throttled
    assert codes.count(200) == 400 - throttled == len(upstream.seen)


def test_faults_can_target_one_operation_a_set_number_of_times(proxy, upstream):
    status, cfg = proxy.control("/_faults/config", {"rates": {"error5xx": 1.0}, "operations": ["vpc-lattice:GET /services"], "budget": 2})
    assert status == 200 and cfg["budget"] == 2
    lattice, elbv2 = client("vpc-lattice", proxy.aws), client("elbv2", proxy.aws)
    with pytest.raises(Exception):
        elbv2.describe_load_balancers()  # not targeted: forwarded (the recorder's answer is not XML)
    for _ in range(2):
        with pytest.raises(ClientError):
            lattice.list_services()
    lattice.list_services()  # budget spent: forwarded
    _, stats = proxy.control("/_faults/stats")
    assert stats["faults_by_operation"] == {"vpc-lattice:GET /services": {"error5xx": 2}}
    assert len(upstream.seen) == 2
    _, cfg = proxy.control("/_faults/config")
    assert cfg["budget"] == 0


def test_control_api_rejects_bad_config(proxy):
    for bad in ({"rates": {"throttle": 1.5}}, {"rates": {"nope": 0.1}}, {"rates": {"throttle": 0.6, "error5xx": 0.6}},
                {"hold_seconds": -1}, {"seed": "x"}, {"other": 1}, [1, 2], {"operations": "x"}, {"budget": -1}):
        status, out = proxy.control("/_faults/config", bad)
        assert status == 400 and out["error"], bad
    status, cfg = proxy.control("/_faults/config")
    assert status == 200 and cfg["rates"] == {"throttle": 0.0, "error5xx": 0.0, "timeout": 0.0, "drop": 0.0}
    status, _ = proxy.control("/_faults/nothing")
    assert status == 404


def test_operation_names():
    def op(flavour, method, target, headers=None, body=b""):
        return operation(Request(flavour, method, target, headers or {}, body))

    auth = {"authorization": "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/vpc-lattice/aws4_request, SignedHeaders=host"}
    assert op("aws", "POST", "/services/svc-0123456789abcdef0/listeners", auth) == "vpc-lattice:POST /services/{id}/listeners"
    assert op("aws", "GET", "/tags/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A1%3Aservice%2Fsvc-1", auth) == "vpc-lattice:GET /tags/{id}"
    assert op("aws", "PATCH", "/services/svc-0123456789abcdef0/listeners/listener-0123456789abcdef0/rules/rule-0123456789abcdef0", auth) \
        == "vpc-lattice:PATCH /services/{id}/listeners/{id}/rules/{id}"
    assert op(GCE, "POST", "/compute/v1/projects/p/zones/us-central1-a/networkEndpointGroups/neg1/attachNetworkEndpoints?x=1") \
        == "gce:POST /compute/v1/projects/{project}/zones/{zone}/networkEndpointGroups/{networkEndpointGroup}/attachNetworkEndpoints"
    assert op(GCE, "GET", "/compute/v1/projects/p/global/operations/op-1") == "gce:GET /compute/v1/projects/{project}/global/operations/{operation}"
