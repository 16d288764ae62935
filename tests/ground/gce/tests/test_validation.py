"""Requests that Google would reject, and the exact error shape it uses."""

from __future__ import annotations

import pytest
import requests
from conftest import assert_google_error, hc_body


def bad(gce, path, body, contains=None, method="POST", code=400, reason="invalid"):
    r = gce.call(method, path, body)
    return assert_google_error(r, code, reason, "INVALID_ARGUMENT" if code == 400 else None, contains)


def test_unknown_field_top_level_and_nested(gce):
    err = bad(gce, "global/healthChecks", {**hc_body("hc"), "colour": "red"}, 'Unknown name "colour"')
    assert err["message"].startswith("Invalid JSON payload received.")
    bad(gce, "global/healthChecks", {**hc_body("hc"), "httpHealthCheck": {"port": 80, "paht": "/"}},
        'Unknown name "paht" at \'resource.httpHealthCheck\'')
    bad(gce, "global/urlMaps", {"name": "um", "pathMatchers": [{"name": "pm", "pathRules": [{"pathz": ["/"]}]}]},
        'Unknown name "pathz" at \'resource.pathMatchers[0].pathRules[0]\'')


@pytest.mark.parametrize("body,where", [
    ({"checkIntervalSec": "often"}, "resource.checkIntervalSec"),  # int32 as junk string
    ({"checkIntervalSec": 1.5}, "resource.checkIntervalSec"),  # non-integral number
    ({"checkIntervalSec": 2**40}, "resource.checkIntervalSec"),  # out of int32 range
    ({"description": 7}, "resource.description"),  # number for a string
    ({"description": ["x"]}, "resource.description"),
    ({"httpHealthCheck": "port 80"}, "resource.httpHealthCheck"),  # string for an object
    ({"httpHealthCheck": {"port": True}}, "resource.httpHealthCheck.port"),  # bool for an int
])
def test_wrong_types(gce, body, where):
    bad(gce, "global/healthChecks", {**hc_body("hc"), **body}, f"'{where}'")


def test_wrong_types_other_shapes(gce):
    bad(gce, "global/urlMaps", {"name": "um", "hostRules": {"hosts": ["a"]}}, "'resource.hostRules'")
    bad(gce, "global/backendServices", {"name": "bs", "enableCDN": "yes"}, "'resource.enableCDN'")
    bad(gce, "global/addresses", {"name": "a", "labels": {"k": 1}}, "'resource.labels.k'")


def test_proto_json_leniency_is_kept(gce):
    # proto3 JSON accepts quoted integers and 64-bit ints as numbers: so does Compute
    gce.insert("global/healthChecks", {**hc_body("hc"), "checkIntervalSec": "10", "timeoutSec": 10.0})
    assert gce.get("global/healthChecks/hc")["checkIntervalSec"] == 10


def test_bad_enum_values(gce):
    err = bad(gce, "global/healthChecks", {"name": "hc", "type": "HTTPX"}, "'resource.type'")
    assert '"HTTPX"' in err["message"]
    bad(gce, "global/backendServices", {"name": "bs", "loadBalancingScheme": "EXTERNAL_UNMANAGED"},
        "'resource.loadBalancingScheme'")
    bad(gce, "global/backendServices", {"name": "bs", "backends": [{"group": "x", "balancingMode": "FAST"}]},
        "'resource.backends[0].balancingMode'")


@pytest.mark.parametrize("field,value", [
    ("id", "123"), ("selfLink", "http://x/y"), ("creationTimestamp", "2024-01-01T00:00:00.000-07:00"),
    ("kind", "compute#urlMap"), ("region", "regions/us-central1"),
])
def test_output_only_fields_rejected_on_insert(gce, field, value):
    if field == "kind":
        # the right kind is harmless; a wrong one is not
        gce.insert("global/healthChecks", {**hc_body("hc"), "kind": "compute#healthCheck"})
    bad(gce, "global/healthChecks", {**hc_body("hc2"), field: value}, f"'resource.{field}'")


def test_output_only_fields_ignored_on_update(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    hc["checkIntervalSec"] = 10
    hc["id"] = "1"  # echoed back / even wrong: ignored like GCE does
    gce.done("PUT", "global/healthChecks/hc", hc)
    got = gce.get("global/healthChecks/hc")
    assert got["checkIntervalSec"] == 10 and got["id"] != "1"


def test_names_and_required_fields(gce):
    bad(gce, "global/healthChecks", {"type": "HTTP"}, "resource.name")
    bad(gce, "global/healthChecks", {**hc_body("Bad_Name")}, "resource.name")
    bad(gce, "global/healthChecks", {**hc_body("a" * 64)}, "resource.name")
    bad(gce, "global/firewalls", {"name": "fw"}, "allowed or denied")
    bad(gce, "global/targetHttpProxies", {"name": "p"}, "URL map")
    bad(gce, "global/targetHttpsProxies", {"name": "p", "urlMap": "global/urlMaps/x"}, "SSL certificate")


def test_semantic_checks_on_url_maps(gce):
    bad(gce, "global/urlMaps", {"name": "um", "hostRules": [{"hosts": ["a.com"], "pathMatcher": "nope"}]},
        "path matcher")
    rr = [{"priority": 1, "matchRules": [{"prefixMatch": "/"}]}, {"priority": 1, "matchRules": [{"prefixMatch": "/a"}]}]
    bad(gce, "global/urlMaps", {"name": "um", "pathMatchers": [{"name": "pm", "routeRules": rr}]},
        "same priority")
    bad(gce, "global/urlMaps", {"name": "um", "pathMatchers": [{"name": "pm", "pathRules": [{"paths": ["a*"]}]}]},
        "paths")
    bad(gce, "global/healthChecks", {**hc_body("hc"), "timeoutSec": 10, "checkIntervalSec": 5}, "timeoutSec")
    bad(gce, "global/healthChecks", {"name": "hc", "type": "TCP", "httpHealthCheck": {"port": 80}}, "type TCP")


def test_malformed_requests(gce):
    r = gce.call("POST", "global/healthChecks", raw="{not json")
    assert_google_error(r, 400, "parseError")
    r = gce.call("POST", "global/healthChecks", raw="")
    assert_google_error(r, 400, "required")
    r = gce.call("POST", "global/healthChecks", raw="[1, 2]")
    assert_google_error(r, 400, "invalid")


def test_path_and_query_parameters(gce):
    # empty path parameter: the resource name is missing
    r = requests.get(f"{gce.endpoint}/compute/v1/projects/{gce.project}/global/healthChecks/", timeout=10)
    assert_google_error(r, 400, "invalid", contains="Required parameter 'healthCheck'")
    r = requests.get(f"{gce.endpoint}/compute/v1/projects//global/healthChecks", timeout=10)
    assert_google_error(r, 400, "invalid", contains="'project'")
    # names that do not match the path pattern
    assert_google_error(gce.call("GET", "global/healthChecks/UPPER"), 400, "invalid", contains="regular expression")
    # unknown and mistyped query parameters
    assert_google_error(gce.call("GET", "global/healthChecks", params={"colour": "red"}), 400, "invalid",
                        contains='Unknown name "colour"')
    assert_google_error(gce.call("GET", "global/healthChecks", params={"maxResults": "many"}), 400, "invalid")
    # standard parameters are fine
    assert gce.call("GET", "global/healthChecks", params={"alt": "json", "prettyPrint": "false"}).status_code == 200


def test_no_auth_needed_and_any_auth_accepted(gce):
    assert gce.call("GET", "global/healthChecks").status_code == 200
    r = requests.get(gce.url("global/healthChecks"), headers={"Authorization": "Bearer whatever"}, timeout=10)
    assert r.status_code == 200


def test_chunked_request_body(gce):
    def gen():
        yield b'{"name": "hc", "type": "HTTP",'
        yield b' "httpHealthCheck": {"port": 8080}}'

    r = requests.post(gce.url("global/healthChecks"), data=gen(), headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 200, r.text
    gce.wait(r.json())
    assert gce.get("global/healthChecks/hc")["httpHealthCheck"]["port"] == 8080
