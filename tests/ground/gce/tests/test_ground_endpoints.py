"""The /_ground/* endpoints, fault injection, the batch endpoint, and Google's
own Python client (googleapiclient) as a second wire-level client."""

from __future__ import annotations

import json

import pytest
import requests
from conftest import assert_google_error, hc_body


def ground(gce, method, path, body=None):
    r = requests.request(method, f"{gce.endpoint}/_ground/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_call_log(gce, fake):
    ground(gce, "POST", "calls/reset")
    assert ground(gce, "GET", "calls") == {"calls": []}
    gce.call("POST", "global/urlMaps", {"name": "um", "defaultService": "global/backendServices/none"})
    op = gce.ok("POST", "global/healthChecks", hc_body("hc"))
    gce.wait(op)
    gce.call("GET", "global/healthChecks/hc")
    gce.call("PATCH", "global/healthChecks/hc", {"checkIntervalSec": 7})
    gce.call("GET", "global/nonsense")
    calls = ground(gce, "GET", "calls")["calls"]
    assert calls == [
        {"method": "compute.urlMaps.insert", "status": 404},
        {"method": "compute.healthChecks.insert", "status": 200},
        {"method": "compute.globalOperations.get", "status": 200},
        {"method": "compute.globalOperations.get", "status": 200},
        {"method": "compute.healthChecks.get", "status": 200},
        {"method": "compute.healthChecks.patch", "status": 200},
        {"method": "unknown", "status": 404},
    ]
    assert ground(gce, "POST", "calls/reset") == {"calls": []}
    assert ground(gce, "GET", "calls")["calls"] == []
    if fake["call_log"]:  # only when this suite started the fake (GROUND_CALL_LOG set)
        lines = [json.loads(x) for x in fake["call_log"].read_text().splitlines()]
        tail = [{"method": x["method"], "status": x["status"]} for x in lines[-7:]]
        assert tail == calls
        assert lines[-2]["http"] == "PATCH" and lines[-2]["path"].endswith("/global/healthChecks/hc")


def test_http_fault_injection(gce):
    ground(gce, "POST", "faults", {"method": "compute.healthChecks.insert", "httpStatus": 503,
                                   "reason": "backendError", "message": "try later", "count": 1})
    try:
        r = gce.call("POST", "global/healthChecks", hc_body("hc"))
        assert_google_error(r, 503, "backendError", "UNAVAILABLE", contains="try later")
        gce.insert("global/healthChecks", hc_body("hc"))  # the retry goes through
    finally:
        ground(gce, "DELETE", "faults")


def test_operation_fault_injection(gce):
    ground(gce, "POST", "faults", {"method": "compute.healthChecks.insert",
                                   "operationError": {"code": "QUOTA_EXCEEDED", "message": "Quota 'HEALTH_CHECKS' "
                                                                                           "exceeded. Limit: 0.0"},
                                   "httpStatus": 403})
    try:
        op = gce.wait(gce.ok("POST", "global/healthChecks", hc_body("hc")))
        assert op["status"] == "DONE"
        assert op["error"] == {"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'HEALTH_CHECKS' exceeded. "
                                                                                "Limit: 0.0"}]}
        assert op["httpErrorStatusCode"] == 403 and op["httpErrorMessage"] == "FORBIDDEN"
        assert gce.call("GET", "global/healthChecks/hc").status_code == 404  # nothing was created
    finally:
        ground(gce, "DELETE", "faults")


def test_info(gce):
    info = ground(gce, "GET", "info")
    assert info["discovery"]["revision"]
    assert "google-api-python-client==" in info["discovery"]["source"] or info["discovery"]["source"]


# ------------------------------------------------------------ googleapiclient
@pytest.fixture
def compute(gce):
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build

    return build("compute", "v1", credentials=AnonymousCredentials(), static_discovery=True,
                 client_options={"api_endpoint": f"{gce.endpoint}/compute/v1/"}, cache_discovery=False)


def test_googleapiclient_roundtrip(gce, compute):
    from googleapiclient.errors import HttpError

    op = compute.healthChecks().insert(project=gce.project, body=hc_body("hc")).execute()
    while op["status"] != "DONE":
        op = compute.globalOperations().wait(project=gce.project, operation=op["name"]).execute()
    hc = compute.healthChecks().get(project=gce.project, healthCheck="hc").execute()
    assert hc["httpHealthCheck"]["requestPath"] == "/healthz"
    with pytest.raises(HttpError) as exc:
        compute.healthChecks().get(project=gce.project, healthCheck="missing").execute()
    assert exc.value.resp.status == 404 and exc.value.error_details[0]["reason"] == "notFound"
    # list_next follows nextPageToken
    for i in range(3):
        compute.globalAddresses().insert(project=gce.project, body={"name": f"a{i}"}).execute()
    req = compute.globalAddresses().list(project=gce.project, maxResults=2)
    got = []
    while req is not None:
        resp = req.execute()
        got += [a["name"] for a in resp.get("items", [])]
        req = compute.globalAddresses().list_next(req, resp)
    assert got == ["a0", "a1", "a2"]


def test_batch_endpoint(gce, compute):
    from googleapiclient.http import BatchHttpRequest

    gce.insert("global/healthChecks", hc_body("hc1"))
    results = {}

    def cb(request_id, response, exception):
        results[request_id] = (response, exception)

    batch = BatchHttpRequest(callback=cb, batch_uri=f"{gce.endpoint}/batch/compute/v1")
    batch.add(compute.healthChecks().get(project=gce.project, healthCheck="hc1"), request_id="a")
    batch.add(compute.healthChecks().get(project=gce.project, healthCheck="nope"), request_id="b")
    batch.add(compute.healthChecks().insert(project=gce.project, body=hc_body("hc2")), request_id="c")
    batch.execute()
    assert results["a"][0]["name"] == "hc1"
    assert results["b"][1] is not None and results["b"][1].resp.status == 404
    assert results["c"][0]["kind"] == "compute#operation"
