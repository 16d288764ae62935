"""Fingerprints, references between resources, and deleting what is in use."""

from __future__ import annotations

import pytest
from conftest import assert_google_error, hc_body, neg_body


@pytest.fixture
def chain(gce):
    """hc <- bs <- um <- proxy <- fr, plus a NEG behind bs."""
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    neg = gce.insert(f"zones/{gce.zone}/networkEndpointGroups", neg_body("neg"))
    bs = gce.insert("global/backendServices", {
        "name": "bs", "loadBalancingScheme": "EXTERNAL_MANAGED", "healthChecks": [hc["selfLink"]],
        "backends": [{"group": neg["selfLink"], "balancingMode": "RATE", "maxRatePerEndpoint": 10}]})
    um = gce.insert("global/urlMaps", {"name": "um", "defaultService": bs["selfLink"]})
    proxy = gce.insert("global/targetHttpProxies", {"name": "proxy", "urlMap": um["selfLink"]})
    fr = gce.insert("global/forwardingRules", {"name": "fr", "target": proxy["selfLink"], "portRange": "80",
                                               "loadBalancingScheme": "EXTERNAL_MANAGED"})
    return {"hc": hc, "neg": neg, "bs": bs, "um": um, "proxy": proxy, "fr": fr}


# ------------------------------------------------------------------ fingerprints
def test_url_map_patch_and_update_fingerprints(gce, chain):
    um = chain["um"]
    fp0 = um["fingerprint"]
    r = gce.call("PATCH", um["selfLink"], {"description": "x", "fingerprint": "AAAAAAAAAAA="})
    assert_google_error(r, 412, "conditionNotMet", "FAILED_PRECONDITION", contains="fingerprint")
    # without a fingerprint: GCE documents that an up-to-date one must be supplied
    assert_google_error(gce.call("PATCH", um["selfLink"], {"description": "x"}), 412, "conditionNotMet")
    # fingerprints are bytes: URL-safe base64 (what apitools/gcloud sends back) is the same value
    urlsafe = fp0.replace("+", "-").replace("/", "_")
    gce.done("PATCH", um["selfLink"], {"description": "x", "fingerprint": urlsafe})
    um1 = gce.get(um["selfLink"])
    assert um1["description"] == "x" and um1["fingerprint"] != fp0
    # the old fingerprint is stale now
    assert_google_error(gce.call("PATCH", um["selfLink"], {"description": "y", "fingerprint": fp0}), 412,
                        "conditionNotMet")
    # update (PUT) = read-modify-write with the body as read
    um1["hostRules"] = [{"hosts": ["a.example.com"], "pathMatcher": "pm"}]
    um1["pathMatchers"] = [{"name": "pm", "defaultService": chain["bs"]["selfLink"]}]
    gce.done("PUT", um["selfLink"], um1)
    um2 = gce.get(um["selfLink"])
    assert um2["fingerprint"] not in (fp0, um1["fingerprint"])
    assert um2["hostRules"] == [{"hosts": ["a.example.com"], "pathMatcher": "pm"}]
    assert um2["id"] == um["id"] and um2["creationTimestamp"] == um["creationTimestamp"]
    assert_google_error(gce.call("PUT", um["selfLink"], um1), 412, "conditionNotMet")


def test_patch_is_a_merge_patch(gce, chain):
    bs = chain["bs"]
    gce.done("PATCH", bs["selfLink"], {"fingerprint": bs["fingerprint"], "timeoutSec": 60,
                                       "logConfig": {"enable": True, "sampleRate": 0.5}})
    bs1 = gce.get(bs["selfLink"])
    assert bs1["timeoutSec"] == 60 and bs1["backends"] == bs["backends"] and bs1["logConfig"]["enable"]
    # null clears a field
    gce.done("PATCH", bs["selfLink"], {"fingerprint": bs1["fingerprint"], "logConfig": None})
    assert "logConfig" not in gce.get(bs["selfLink"])


def test_https_proxy_fingerprint(gce, chain, tls_pair):
    cert = gce.insert("global/sslCertificates", {"name": "c", "certificate": tls_pair[0], "privateKey": tls_pair[1]})
    p = gce.insert("global/targetHttpsProxies", {"name": "sp", "urlMap": chain["um"]["selfLink"],
                                                 "sslCertificates": [cert["selfLink"]]})
    assert_google_error(gce.call("PATCH", p["selfLink"], {"description": "d", "fingerprint": "AAAAAAAAAAA="}),
                        412, "conditionNotMet")
    gce.done("PATCH", p["selfLink"], {"description": "d", "fingerprint": p["fingerprint"]})
    assert gce.get(p["selfLink"])["fingerprint"] != p["fingerprint"]
    # setSslCertificates/setUrlMap change the fingerprint too
    fp = gce.get(p["selfLink"])["fingerprint"]
    gce.done("POST", "targetHttpsProxies/sp/setSslCertificates", {"sslCertificates": [cert["selfLink"]]})
    assert gce.get(p["selfLink"])["fingerprint"] != fp


def test_set_labels_label_fingerprint(gce, chain):
    fr = chain["fr"]
    assert fr["labelFingerprint"] == "42WmSpB8rSM="  # GCE's fingerprint of "no labels"
    r = gce.call("POST", "global/forwardingRules/fr/setLabels", {"labels": {"a": "b"}, "labelFingerprint": "xxxx"})
    assert_google_error(r, 412, "conditionNotMet")
    op = gce.done("POST", "global/forwardingRules/fr/setLabels",
                  {"labels": {"cloudgate": "owned"}, "labelFingerprint": fr["labelFingerprint"]})
    assert op["operationType"] == "setLabels"
    fr1 = gce.get(fr["selfLink"])
    assert fr1["labels"] == {"cloudgate": "owned"} and fr1["labelFingerprint"] != fr["labelFingerprint"]
    # regional addresses have setLabels too
    a = gce.insert(f"regions/{gce.region}/addresses", {"name": "ra"})
    gce.done("POST", f"regions/{gce.region}/addresses/ra/setLabels",
             {"labels": {"k": "v"}, "labelFingerprint": a["labelFingerprint"]})
    assert gce.get(a["selfLink"])["labels"] == {"k": "v"}
    # invalid label keys
    r = gce.call("POST", f"regions/{gce.region}/addresses/ra/setLabels",
                 {"labels": {"Bad Key": "v"}, "labelFingerprint": gce.get(a["selfLink"])["labelFingerprint"]})
    assert_google_error(r, 400, "invalid")
    # forwarding rule patch only touches the few patchable fields
    r = gce.call("PATCH", fr["selfLink"], {"target": chain["proxy"]["selfLink"], "fingerprint": fr1["fingerprint"]})
    assert_google_error(r, 400, "invalid", contains="forwardingRules.patch")


# ------------------------------------------------------------------- references
def test_missing_references_are_not_found(gce, chain):
    missing_bs = f"projects/{gce.project}/global/backendServices/nope"
    r = gce.call("POST", "global/urlMaps", {"name": "um2", "defaultService": "global/backendServices/nope"})
    assert_google_error(r, 404, "notFound", "NOT_FOUND", contains=f"'{missing_bs}' was not found")
    r = gce.call("POST", "global/urlMaps", {"name": "um2", "defaultService": chain["bs"]["selfLink"],
                                            "hostRules": [{"hosts": ["x.com"], "pathMatcher": "pm"}],
                                            "pathMatchers": [{"name": "pm", "defaultService": chain["bs"]["selfLink"],
                                                              "pathRules": [{"paths": ["/a"], "service":
                                                                             "global/backendServices/nope"}]}]})
    assert_google_error(r, 404, "notFound")
    r = gce.call("POST", "global/targetHttpProxies", {"name": "p2", "urlMap": "global/urlMaps/nope"})
    assert_google_error(r, 404, "notFound", contains="urlMaps/nope")
    r = gce.call("POST", "global/forwardingRules", {"name": "fr2", "target": "global/targetHttpProxies/nope",
                                                    "portRange": "8080"})
    assert_google_error(r, 404, "notFound", contains="targetHttpProxies/nope")
    r = gce.call("POST", "global/backendServices", {
        "name": "bs2", "healthChecks": [chain["hc"]["selfLink"]],
        "backends": [{"group": f"zones/{gce.zone}/networkEndpointGroups/nope", "balancingMode": "RATE",
                      "maxRatePerEndpoint": 1}]})
    assert_google_error(r, 404, "notFound", contains="networkEndpointGroups/nope")
    r = gce.call("POST", "global/backendServices", {"name": "bs3", "healthChecks": ["global/healthChecks/nope"]})
    assert_google_error(r, 404, "notFound")
    # the failed inserts left nothing behind
    assert gce.call("GET", "global/urlMaps/um2").status_code == 404


def test_malformed_and_mistyped_references(gce, chain):
    r = gce.call("POST", "global/urlMaps", {"name": "um2", "defaultService": "just-a-name"})
    assert_google_error(r, 400, "invalid", contains="malformed")
    r = gce.call("POST", "global/urlMaps", {"name": "um2", "defaultService": chain["hc"]["selfLink"]})
    assert_google_error(r, 400, "invalid", contains="allowed type")
    # a global URL map cannot point at a regional backend service
    rhc = gce.insert(f"regions/{gce.region}/healthChecks", hc_body("rhc"))
    rbs = gce.insert(f"regions/{gce.region}/backendServices", {"name": "rbs", "healthChecks": [rhc["selfLink"]],
                                                                "loadBalancingScheme": "INTERNAL_MANAGED",
                                                                "protocol": "HTTP"})
    r = gce.call("POST", "global/urlMaps", {"name": "um3", "defaultService": rbs["selfLink"]})
    assert_google_error(r, 400, "invalid", contains="cannot reference")
    # a patch that introduces a missing reference fails and changes nothing
    um = chain["um"]
    r = gce.call("PATCH", um["selfLink"], {"defaultService": "global/backendServices/gone",
                                           "fingerprint": um["fingerprint"]})
    assert_google_error(r, 404, "notFound")
    assert gce.get(um["selfLink"])["fingerprint"] == um["fingerprint"]


def test_backend_service_rules(gce, chain):
    neg = chain["neg"]
    r = gce.call("POST", "global/backendServices", {"name": "nohc", "loadBalancingScheme": "EXTERNAL_MANAGED",
                                                    "backends": [{"group": neg["selfLink"], "balancingMode": "RATE",
                                                                  "maxRatePerEndpoint": 1}]})
    assert_google_error(r, 400, "invalid", contains="health check")
    r = gce.call("POST", "global/backendServices", {"name": "norate", "healthChecks": [chain["hc"]["selfLink"]],
                                                    "backends": [{"group": neg["selfLink"], "balancingMode": "RATE"}]})
    assert_google_error(r, 400, "invalid", contains="maxRate")
    r = gce.call("POST", "global/backendServices", {"name": "util", "healthChecks": [chain["hc"]["selfLink"]],
                                                    "backends": [{"group": neg["selfLink"],
                                                                  "balancingMode": "UTILIZATION"}]})
    assert_google_error(r, 400, "invalid", contains="UTILIZATION")


# ------------------------------------------------------------------ in use
@pytest.mark.parametrize("victim,user", [
    ("bs", "um"), ("hc", "bs"), ("neg", "bs"), ("um", "proxy"), ("proxy", "fr"),
])
def test_delete_in_use_is_refused(gce, chain, victim, user):
    err = assert_google_error(gce.call("DELETE", chain[victim]["selfLink"]), 400, "resourceInUseByAnotherResource")
    key = chain[victim]["selfLink"].split("/compute/v1/")[1]
    user_key = chain[user]["selfLink"].split("/compute/v1/")[1]
    singular = {"bs": "backend_service", "hc": "health_check", "neg": "network_endpoint_group",
                "um": "url_map", "proxy": "target_http_proxy"}[victim]
    assert err["message"] == f"The {singular} resource '{key}' is already being used by '{user_key}'"
    assert gce.get(chain[victim]["selfLink"])["name"] == chain[victim]["name"]


def test_delete_address_in_use_and_teardown_order(gce, chain):
    a = gce.insert("global/addresses", {"name": "vip"})
    fr = gce.insert("global/forwardingRules", {"name": "fr443", "target": chain["proxy"]["selfLink"],
                                               "portRange": "443", "IPAddress": "vip",
                                               "loadBalancingScheme": "EXTERNAL_MANAGED"})
    assert fr["IPAddress"] == a["address"]
    assert_google_error(gce.call("DELETE", a["selfLink"]), 400, "resourceInUseByAnotherResource")
    for name in ("fr443", "fr"):
        gce.done("DELETE", f"global/forwardingRules/{name}")
    gce.done("DELETE", a["selfLink"])
    for key in ("proxy", "um", "bs", "neg", "hc"):
        gce.done("DELETE", chain[key]["selfLink"])


def test_forwarding_rule_patch_fingerprint_is_optional(gce, chain):
    fr = chain["fr"]
    # the discovery doc only *advises* a fingerprint for forwardingRules.patch
    gce.done("PATCH", fr["selfLink"], {"networkTier": "PREMIUM"})
    assert_google_error(gce.call("PATCH", fr["selfLink"], {"networkTier": "PREMIUM", "fingerprint": "AAAAAAAAAAA="}),
                        412, "conditionNotMet")
