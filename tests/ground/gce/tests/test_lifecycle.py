"""Load-balancer chains built through operations, global and regional."""

from __future__ import annotations

import re

import pytest
import requests
from conftest import assert_google_error, hc_body, neg_body

ID_RE = re.compile(r"^[1-9][0-9]{0,19}$")


def check_resource(gce, res, kind, name):
    assert res["kind"] == kind
    assert res["name"] == name
    assert ID_RE.match(res["id"]) and 0 < int(res["id"]) < 2**64
    assert res["selfLink"].startswith(gce.endpoint + "/compute/v1/projects/" + gce.project + "/")
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$", res["creationTimestamp"])
    # selfLinks are followable as-is
    assert gce.get(res["selfLink"]) == res


def test_global_external_chain(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    check_resource(gce, hc, "compute#healthCheck", "hc")
    assert hc["checkIntervalSec"] == 5 and hc["httpHealthCheck"]["proxyHeader"] == "NONE"

    neg = gce.insert(f"zones/{gce.zone}/networkEndpointGroups", neg_body("neg"))
    check_resource(gce, neg, "compute#networkEndpointGroup", "neg")
    assert neg["size"] == 0
    assert neg["network"] == f"{gce.endpoint}/compute/v1/projects/{gce.project}/global/networks/default"
    assert neg["zone"].endswith(f"/zones/{gce.zone}")

    bs = gce.insert("global/backendServices", {
        "name": "bs", "protocol": "HTTP", "loadBalancingScheme": "EXTERNAL_MANAGED",
        "healthChecks": [hc["selfLink"]],
        "backends": [{"group": neg["selfLink"], "balancingMode": "RATE", "maxRatePerEndpoint": 100}],
    })
    check_resource(gce, bs, "compute#backendService", "bs")
    assert bs["timeoutSec"] == 30 and bs["fingerprint"]
    assert bs["backends"][0]["capacityScaler"] == 1

    # partial URLs are accepted and come back as full URLs
    um = gce.insert("global/urlMaps", {
        "name": "um", "defaultService": "global/backendServices/bs",
        "hostRules": [{"hosts": ["example.com"], "pathMatcher": "pm"}],
        "pathMatchers": [{"name": "pm", "defaultService": f"projects/{gce.project}/global/backendServices/bs",
                          "routeRules": [
                              {"priority": 1, "matchRules": [{"fullPathMatch": "/exact"}], "service": bs["selfLink"]},
                              {"priority": 2, "matchRules": [{"prefixMatch": "/"}], "routeAction": {
                                  "weightedBackendServices": [{"backendService": bs["selfLink"], "weight": 100}]}},
                          ]}],
    })
    check_resource(gce, um, "compute#urlMap", "um")
    assert um["defaultService"] == bs["selfLink"]
    assert um["pathMatchers"][0]["defaultService"] == bs["selfLink"]

    bs_after = gce.get(bs["selfLink"])
    assert {"reference": um["selfLink"]} in bs_after["usedBy"]

    proxy = gce.insert("global/targetHttpProxies", {"name": "proxy", "urlMap": um["selfLink"]})
    check_resource(gce, proxy, "compute#targetHttpProxy", "proxy")

    addr = gce.insert("global/addresses", {"name": "vip", "labels": {"cloudgate": "owned"}})
    check_resource(gce, addr, "compute#address", "vip")
    assert addr["status"] == "RESERVED" and addr["addressType"] == "EXTERNAL"

    fr = gce.insert("global/forwardingRules", {
        "name": "fr", "IPAddress": addr["selfLink"], "IPProtocol": "TCP", "portRange": "80",
        "target": proxy["selfLink"], "loadBalancingScheme": "EXTERNAL_MANAGED",
        "labels": {"cloudgate-gateway": "ns_gw"},
    })
    check_resource(gce, fr, "compute#forwardingRule", "fr")
    assert fr["IPAddress"] == addr["address"], "GCE returns the IP number, not the address URL"
    assert fr["portRange"] == "80-80"
    assert fr["labels"] == {"cloudgate-gateway": "ns_gw"}
    addr = gce.get(addr["selfLink"])
    assert addr["status"] == "IN_USE" and addr["users"] == [fr["selfLink"]]

    # teardown children first
    for link in (fr["selfLink"], proxy["selfLink"], um["selfLink"], bs["selfLink"], neg["selfLink"],
                 hc["selfLink"], addr["selfLink"]):
        op = gce.done("DELETE", link)
        assert op["operationType"] == "delete" and op["targetLink"] == link
        assert gce.call("GET", link).status_code == 404


def test_regional_internal_chain_with_https(gce, tls_pair):
    r = f"regions/{gce.region}"
    hc = gce.insert(f"{r}/healthChecks", hc_body("rhc"))
    assert hc["region"].endswith(f"/regions/{gce.region}")
    neg = gce.insert(f"zones/{gce.zone}/networkEndpointGroups", neg_body("rneg"))
    bs = gce.insert(f"{r}/backendServices", {
        "name": "rbs", "protocol": "HTTP", "loadBalancingScheme": "INTERNAL_MANAGED",
        "healthChecks": [hc["selfLink"]],
        "backends": [{"group": neg["selfLink"], "balancingMode": "RATE", "maxRatePerEndpoint": 5}],
    })
    um = gce.insert(f"{r}/urlMaps", {"name": "rum", "defaultService": bs["selfLink"]})
    cert_pem, key_pem = tls_pair
    cert = gce.insert(f"{r}/sslCertificates", {"name": "rcert", "certificate": cert_pem, "privateKey": key_pem})
    assert cert["type"] == "SELF_MANAGED" and "privateKey" not in cert
    assert cert["subjectAlternativeNames"] == ["www.example.com"]
    assert cert["expireTime"].startswith("20")
    proxy = gce.insert(f"{r}/targetHttpsProxies", {"name": "rproxy", "urlMap": um["selfLink"],
                                                   "sslCertificates": [cert["selfLink"]]})
    fr = gce.insert(f"{r}/forwardingRules", {
        "name": "rfr", "portRange": "443", "target": proxy["selfLink"], "loadBalancingScheme": "INTERNAL_MANAGED",
        "network": "global/networks/default", "subnetwork": f"regions/{gce.region}/subnetworks/default",
    })
    assert fr["IPAddress"].startswith("10.128.")
    assert "networkTier" not in fr

    # the global setUrlMap path has no /global/ but the regional one has the region
    um2 = gce.insert(f"{r}/urlMaps", {"name": "rum2", "defaultService": bs["selfLink"]})
    gce.done("POST", f"{r}/targetHttpsProxies/rproxy/setUrlMap", {"urlMap": um2["selfLink"]})
    assert gce.get(proxy["selfLink"])["urlMap"] == um2["selfLink"]
    cert2 = gce.insert(f"{r}/sslCertificates", {"name": "rcert2", "certificate": cert_pem, "privateKey": key_pem})
    op = gce.done("POST", f"{r}/targetHttpsProxies/rproxy/setSslCertificates",
                  {"sslCertificates": [cert["selfLink"], cert2["selfLink"]]})
    assert op["region"].endswith(f"/regions/{gce.region}") and "/regions/" in op["selfLink"]
    assert gce.get(proxy["selfLink"])["sslCertificates"] == [cert["selfLink"], cert2["selfLink"]]
    # a regional proxy cannot use a global certificate
    gcert = gce.insert("global/sslCertificates", {"name": "gcert", "certificate": cert_pem, "privateKey": key_pem})
    r_bad = gce.call("POST", f"{r}/targetHttpsProxies/rproxy/setSslCertificates",
                     {"sslCertificates": [gcert["selfLink"]]})
    assert_google_error(r_bad, 400, "invalid", "INVALID_ARGUMENT")


def test_set_target_and_global_set_url_map(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    bs = gce.insert("global/backendServices", {"name": "bs", "healthChecks": [hc["selfLink"]],
                                               "loadBalancingScheme": "EXTERNAL_MANAGED"})
    um = gce.insert("global/urlMaps", {"name": "um", "defaultService": bs["selfLink"]})
    um2 = gce.insert("global/urlMaps", {"name": "um2", "defaultService": bs["selfLink"]})
    p1 = gce.insert("global/targetHttpProxies", {"name": "p1", "urlMap": um["selfLink"]})
    p2 = gce.insert("global/targetHttpProxies", {"name": "p2", "urlMap": um["selfLink"]})
    op = gce.done("POST", "targetHttpProxies/p1/setUrlMap", {"urlMap": um2["selfLink"]})
    assert op["operationType"] == "SetUrlMap" and "region" not in op
    assert gce.get(p1["selfLink"])["urlMap"] == um2["selfLink"]
    fr = gce.insert("global/forwardingRules", {"name": "fr", "target": p1["selfLink"], "portRange": "80",
                                               "loadBalancingScheme": "EXTERNAL_MANAGED"})
    fp = fr["fingerprint"]
    gce.done("POST", "global/forwardingRules/fr/setTarget", {"target": p2["selfLink"]})
    fr2 = gce.get(fr["selfLink"])
    assert fr2["target"] == p2["selfLink"] and fr2["fingerprint"] != fp
    # p1 is free now, p2 is not
    gce.done("DELETE", p1["selfLink"])
    assert_google_error(gce.call("DELETE", p2["selfLink"]), 400, "resourceInUseByAnotherResource")


def test_scheme_mismatch_through_proxy_is_rejected(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    bs = gce.insert("global/backendServices", {"name": "bs", "healthChecks": [hc["selfLink"]],
                                               "loadBalancingScheme": "EXTERNAL"})
    um = gce.insert("global/urlMaps", {"name": "um", "defaultService": bs["selfLink"]})
    p = gce.insert("global/targetHttpProxies", {"name": "p", "urlMap": um["selfLink"]})
    r = gce.call("POST", "global/forwardingRules", {"name": "fr", "target": p["selfLink"], "portRange": "80",
                                                    "loadBalancingScheme": "EXTERNAL_MANAGED"})
    assert_google_error(r, 400, "invalid", contains="loadBalancingScheme")


def test_port_conflict_on_same_address(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    bs = gce.insert("global/backendServices", {"name": "bs", "healthChecks": [hc["selfLink"]],
                                               "loadBalancingScheme": "EXTERNAL_MANAGED"})
    um = gce.insert("global/urlMaps", {"name": "um", "defaultService": bs["selfLink"]})
    p = gce.insert("global/targetHttpProxies", {"name": "p", "urlMap": um["selfLink"]})
    a = gce.insert("global/addresses", {"name": "a"})
    common = {"target": p["selfLink"], "loadBalancingScheme": "EXTERNAL_MANAGED", "IPAddress": a["address"]}
    gce.insert("global/forwardingRules", {"name": "f80", "portRange": "80", **common})
    gce.insert("global/forwardingRules", {"name": "f8080", "portRange": "8080", **common})
    r = gce.call("POST", "global/forwardingRules", {"name": "dup", "portRange": "80", **common})
    assert_google_error(r, 400, "invalid", contains="overlapping port range")
    # an IP that is not reserved cannot be used for an external rule
    r = gce.call("POST", "global/forwardingRules", {"name": "x", "portRange": "81", **{**common,
                                                                                     "IPAddress": "1.2.3.4"}})
    assert_google_error(r, 400, "invalid", contains="not reserved")


def test_operations_walk_pending_running_done(gce, op_steps):
    if op_steps != 2:
        pytest.skip(f"this test expects GCE_FAKE_OP_STEPS=2, the fake runs with {op_steps}")
    op = gce.ok("POST", "global/healthChecks", hc_body("hc"))
    assert op["kind"] == "compute#operation" and op["status"] == "PENDING" and op["progress"] == 0
    assert op["operationType"] == "insert"
    assert op["targetLink"] == gce.url("global/healthChecks/hc")
    assert "/global/operations/" in op["selfLink"] and "region" not in op and "zone" not in op
    op1 = gce.get(op["selfLink"])
    assert op1["status"] == "RUNNING" and "startTime" in op1
    op2 = gce.get(op["selfLink"])
    assert op2["status"] == "DONE" and op2["progress"] == 100 and "endTime" in op2
    assert op2["targetId"] == gce.get("global/healthChecks/hc")["id"]
    assert gce.get(op["selfLink"])["status"] == "DONE"
    # operations can be read by numeric id too, and listed
    assert gce.get(f"global/operations/{op['id']}")["name"] == op["name"]
    names = [o["name"] for o in gce.get("global/operations").get("items", [])]
    assert op["name"] in names

    # wait returns when the operation is DONE; zonal and regional operations live in their scope
    zop = gce.ok("POST", f"zones/{gce.zone}/networkEndpointGroups", neg_body("neg"))
    assert f"/zones/{gce.zone}/operations/" in zop["selfLink"] and zop["zone"].endswith(gce.zone)
    assert gce.wait(zop, via="wait")["_seen"] == ["PENDING", "DONE"]
    rop = gce.ok("POST", f"regions/{gce.region}/healthChecks", hc_body("rhc"))
    assert f"/regions/{gce.region}/operations/" in rop["selfLink"]
    assert gce.wait(rop)["_seen"] == ["PENDING", "RUNNING", "DONE"]
    assert gce.call("GET", "global/operations/operation-does-not-exist").status_code == 404
    # deleting an operation record
    assert gce.call("DELETE", op["selfLink"]).status_code in (200, 204)
    assert gce.call("GET", op["selfLink"]).status_code == 404


def test_reference_to_resource_still_being_created_is_not_ready(gce, op_steps):
    if op_steps == 0:
        pytest.skip("operations finish at once with GCE_FAKE_OP_STEPS=0")
    gce.insert("global/healthChecks", hc_body("hc"))
    op = gce.ok("POST", "global/backendServices", {"name": "bs", "healthChecks": ["global/healthChecks/hc"]})
    r = gce.call("POST", "global/urlMaps", {"name": "um", "defaultService": "global/backendServices/bs"})
    assert_google_error(r, 400, "resourceNotReady", contains="is not ready")
    # modifying or deleting it while its operation runs is refused as well
    assert_google_error(gce.call("DELETE", "global/backendServices/bs"), 400, "resourceNotReady")
    gce.wait(op)
    # while a *change* to it is in flight, it can be referenced but not changed again
    bs = gce.get("global/backendServices/bs")
    op = gce.ok("PATCH", "global/backendServices/bs", {"timeoutSec": 40, "fingerprint": bs["fingerprint"]})
    gce.insert("global/urlMaps", {"name": "um", "defaultService": "global/backendServices/bs"})
    r = gce.call("PATCH", "global/backendServices/bs", {"timeoutSec": 50, "fingerprint": bs["fingerprint"]})
    assert_google_error(r, 400, "resourceNotReady")
    gce.wait(op)


def test_request_id_makes_retries_idempotent(gce):
    rid = "6f1c4e9e-7d1c-4b55-9c55-0b1d0e3c1a11"
    op1 = gce.ok("POST", "global/healthChecks", hc_body("hc"), params={"requestId": rid})
    op2 = gce.ok("POST", "global/healthChecks", hc_body("hc"), params={"requestId": rid})
    assert op1["name"] == op2["name"]
    r = gce.call("POST", "global/healthChecks", hc_body("hc2"), params={"requestId": "not-a-uuid"})
    assert_google_error(r, 400, "invalid")


def test_lookup_by_numeric_id(gce):
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    assert gce.get(f"global/healthChecks/{hc['id']}")["name"] == "hc"


def test_unknown_region_and_zone(gce):
    assert_google_error(gce.call("GET", "regions/mars-north1/urlMaps"), 400, "invalid", contains="Unknown region")
    assert_google_error(gce.call("GET", "zones/mars-north1-a/networkEndpointGroups"), 400, "invalid",
                        contains="Unknown zone")


def test_unknown_path_and_unimplemented_method(gce):
    assert_google_error(gce.call("GET", "global/nothingHere"), 404, "notFound")
    r = gce.call("GET", "global/backendBuckets")
    assert_google_error(r, 501, "notImplemented", "UNIMPLEMENTED")
    r = requests.get(gce.endpoint + "/compute/v1/projects", timeout=10)
    assert r.status_code == 404


def test_default_network_and_networks_insert(gce):
    net = gce.get("global/networks/default")
    assert net["autoCreateSubnetworks"] is True
    assert gce.get(f"regions/{gce.region}/subnetworks/default")["ipCidrRange"] == "10.128.0.0/20"
    n = gce.insert("global/networks", {"name": "vpc", "autoCreateSubnetworks": False})
    s = gce.insert(f"regions/{gce.region}/subnetworks", {"name": "sub", "network": n["selfLink"],
                                                          "ipCidrRange": "10.10.0.0/24"})
    assert s["gatewayAddress"] == "10.10.0.1"
    neg = gce.insert(f"zones/{gce.zone}/networkEndpointGroups",
                     {**neg_body("neg"), "network": n["selfLink"], "subnetwork": s["selfLink"]})
    assert neg["subnetwork"] == s["selfLink"]
    assert_google_error(gce.call("DELETE", n["selfLink"]), 400, "resourceInUseByAnotherResource")
    r = gce.call("POST", "zones/us-east1-b/networkEndpointGroups",
                 {**neg_body("neg2"), "network": n["selfLink"], "subnetwork": s["selfLink"]})
    assert_google_error(r, 400, "invalid", contains="region")


def test_firewall_crud(gce):
    fw = gce.insert("global/firewalls", {"name": "allow-hc", "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}],
                                         "sourceRanges": ["130.211.0.0/22", "35.191.0.0/16"],
                                         "targetTags": ["gke-node"]})
    assert fw["priority"] == 1000 and fw["direction"] == "INGRESS"
    gce.done("PATCH", fw["selfLink"], {"name": "allow-hc", "sourceRanges": ["35.191.0.0/16"]})
    assert gce.get(fw["selfLink"])["sourceRanges"] == ["35.191.0.0/16"]
    body = gce.get(fw["selfLink"])
    body["priority"] = 900
    gce.done("PUT", fw["selfLink"], body)
    assert gce.get(fw["selfLink"])["priority"] == 900
    r = gce.call("POST", "global/firewalls", {"name": "bad", "sourceRanges": ["0.0.0.0/0"]})
    assert_google_error(r, 400, "invalid", contains="allowed or denied")
    gce.done("DELETE", fw["selfLink"])


def test_managed_certificate(gce):
    c = gce.insert("global/sslCertificates", {"name": "mc", "type": "MANAGED",
                                              "managed": {"domains": ["a.example.com"]}})
    assert c["managed"]["status"] == "PROVISIONING"
    assert c["managed"]["domainStatus"] == {"a.example.com": "PROVISIONING"}
    r = gce.call("POST", "global/sslCertificates", {"name": "bad", "certificate": "not a pem",
                                                    "privateKey": "-----BEGIN PRIVATE KEY-----"})
    assert_google_error(r, 400, "invalid", contains="could not be parsed")
