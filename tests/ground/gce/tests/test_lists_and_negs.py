"""list: pagination, filters, ordering, aggregatedList; NEG endpoints."""

from __future__ import annotations

from conftest import assert_google_error, hc_body, neg_body


def fill_addresses(gce, n=7):
    for i in range(n):
        op = gce.ok("POST", "global/addresses", {"name": f"addr-{i}",
                                                 "labels": {"env": "prod" if i % 2 == 0 else "dev",
                                                            **({"owner": "team-a"} if i < 3 else {})}})
        gce.wait(op)


def names(resp):
    return [i["name"] for i in resp.get("items", [])]


def test_empty_list_has_no_items_key(gce):
    resp = gce.get("global/urlMaps")
    assert resp["kind"] == "compute#urlMapList"
    assert "items" not in resp and "nextPageToken" not in resp
    assert resp["selfLink"] == gce.url("global/urlMaps")


def test_pagination(gce):
    fill_addresses(gce)
    seen, token, pages = [], None, 0
    while True:
        params = {"maxResults": 3, **({"pageToken": token} if token else {})}
        resp = gce.get("global/addresses", params=params)
        assert len(resp["items"]) <= 3
        seen += names(resp)
        pages += 1
        token = resp.get("nextPageToken")
        if not token:
            break
    assert pages == 3
    assert seen == [f"addr-{i}" for i in range(7)]
    assert_google_error(gce.call("GET", "global/addresses", params={"pageToken": "garbage"}), 400, "invalid")
    assert_google_error(gce.call("GET", "global/addresses", params={"maxResults": 501}), 400, "invalid")
    # a token only fits the query it came from
    tok = gce.get("global/addresses", params={"maxResults": 2})["nextPageToken"]
    r = gce.call("GET", "global/addresses", params={"maxResults": 2, "pageToken": tok, "filter": "name=addr-1"})
    assert_google_error(r, 400, "invalid")


def test_filters(gce):
    fill_addresses(gce)
    f = lambda expr: names(gce.get("global/addresses", params={"filter": expr}))  # noqa: E731
    assert f("labels.env=prod") == ["addr-0", "addr-2", "addr-4", "addr-6"]
    assert f("labels.env = prod") == f("labels.env=prod")
    assert f('labels.env = "dev"') == ["addr-1", "addr-3", "addr-5"]
    assert f("name=addr-3") == ["addr-3"]
    assert f("name != addr-3") == [f"addr-{i}" for i in range(7) if i != 3]
    assert f("labels.owner:*") == ["addr-0", "addr-1", "addr-2"]
    assert f("(labels.env = prod) (labels.owner = team-a)") == ["addr-0", "addr-2"]
    assert f("labels.env = prod AND labels.owner = team-a") == ["addr-0", "addr-2"]
    assert f("(name = addr-1) OR (name = addr-2)") == ["addr-1", "addr-2"]
    assert f("name eq 'addr-[0-2]'") == ["addr-0", "addr-1", "addr-2"]
    assert f("name ne .*-[0-5]") == ["addr-6"]
    assert f("name=addr-*") == [f"addr-{i}" for i in range(7)]
    assert f("labels.env=staging") == []
    assert_google_error(gce.call("GET", "global/addresses", params={"filter": "name = "}), 400, "invalid")
    # filter + pagination
    resp = gce.get("global/addresses", params={"filter": "labels.env=prod", "maxResults": 3})
    assert names(resp) == ["addr-0", "addr-2", "addr-4"]
    resp = gce.get("global/addresses", params={"filter": "labels.env=prod", "maxResults": 3,
                                               "pageToken": resp["nextPageToken"]})
    assert names(resp) == ["addr-6"] and "nextPageToken" not in resp


def test_order_by(gce):
    fill_addresses(gce, 3)
    assert names(gce.get("global/addresses", params={"orderBy": "creationTimestamp desc"}))[0] in ("addr-2",)
    assert_google_error(gce.call("GET", "global/addresses", params={"orderBy": "labels"}), 400, "invalid")


def test_aggregated_list(gce):
    gce.insert("global/healthChecks", hc_body("g"))
    gce.insert(f"regions/{gce.region}/healthChecks", hc_body("r"))
    resp = gce.get("aggregated/healthChecks")
    assert resp["kind"] == "compute#healthChecksAggregatedList"
    assert [h["name"] for h in resp["items"]["global"]["healthChecks"]] == ["g"]
    assert [h["name"] for h in resp["items"][f"regions/{gce.region}"]["healthChecks"]] == ["r"]
    resp = gce.get("aggregated/healthChecks", params={"includeAllScopes": "true"})
    assert resp["items"]["regions/europe-west1"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"


# ---------------------------------------------------------------- NEG endpoints
def ep(i, port=None):
    e = {"instance": f"gke-node-{i % 2}", "ipAddress": f"10.4.0.{i}"}
    if port:
        e["port"] = port
    return e


def test_attach_list_detach(gce):
    z = f"zones/{gce.zone}/networkEndpointGroups"
    gce.insert(z, neg_body("neg", port=8080))
    op = gce.done("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1), ep(2), ep(3, 9090)]})
    assert op["operationType"] == "attachNetworkEndpoints" and op["zone"].endswith(gce.zone)
    assert gce.get(f"{z}/neg")["size"] == 3
    resp = gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {})
    assert resp["kind"] == "compute#networkEndpointGroupsListNetworkEndpoints"
    got = [i["networkEndpoint"] for i in resp["items"]]
    assert got == [{**ep(1), "port": 8080}, {**ep(2), "port": 8080}, {**ep(3), "port": 9090}]
    # pagination of endpoints
    p1 = gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {}, params={"maxResults": 2})
    assert len(p1["items"]) == 2 and p1["nextPageToken"]
    p2 = gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {}, params={"maxResults": 2,
                                                                     "pageToken": p1["nextPageToken"]})
    assert [i["networkEndpoint"]["ipAddress"] for i in p2["items"]] == ["10.4.0.3"]
    # detach uses the same identity (ip, port, instance); port falls back to defaultPort
    gce.done("POST", f"{z}/neg/detachNetworkEndpoints", {"networkEndpoints": [ep(2)]})
    resp = gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {"healthStatus": "SKIP"})
    assert [i["networkEndpoint"]["ipAddress"] for i in resp["items"]] == ["10.4.0.1", "10.4.0.3"]
    gce.done("POST", f"{z}/neg/detachNetworkEndpoints", {"networkEndpoints": [ep(1), ep(3, 9090)]})
    assert "items" not in gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {})


def test_endpoint_errors(gce):
    z = f"zones/{gce.zone}/networkEndpointGroups"
    gce.insert(z, {**neg_body("neg"), "defaultPort": None})
    # synchronous: invalid endpoints
    r = gce.call("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [{"ipAddress": "10.4.0.1",
                                                                                   "port": 80}]})
    assert_google_error(r, 400, "invalid", contains="instance")
    r = gce.call("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1)]})
    assert_google_error(r, 400, "invalid", contains="port")
    r = gce.call("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1, 70000)]})
    assert_google_error(r, 400, "invalid")
    r = gce.call("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [{**ep(1, 80), "ipAddress": "x"}]})
    assert_google_error(r, 400, "invalid", contains="IPv4")
    r = gce.call("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [{**ep(1, 80), "weight": 3}]})
    assert_google_error(r, 400, "invalid", contains='Unknown name "weight"')
    # asynchronous: already attached / not attached -> the operation carries the error
    gce.done("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1, 80)]})
    op = gce.wait(gce.ok("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1, 80)]}))
    assert op["status"] == "DONE" and op["error"]["errors"][0]["code"] == "RESOURCE_ALREADY_EXISTS"
    assert op["httpErrorStatusCode"] == 400 and op["httpErrorMessage"] == "BAD REQUEST"
    op = gce.wait(gce.ok("POST", f"{z}/neg/detachNetworkEndpoints", {"networkEndpoints": [ep(5, 80)]}))
    assert op["error"]["errors"][0]["code"] == "RESOURCE_NOT_FOUND" and op["httpErrorStatusCode"] == 404
    assert gce.get(f"{z}/neg")["size"] == 1


def test_list_endpoints_with_health(gce):
    z = f"zones/{gce.zone}/networkEndpointGroups"
    neg = gce.insert(z, neg_body("neg"))
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    bs = gce.insert("global/backendServices", {
        "name": "bs", "healthChecks": [hc["selfLink"]], "loadBalancingScheme": "EXTERNAL_MANAGED",
        "backends": [{"group": neg["selfLink"], "balancingMode": "RATE", "maxRatePerEndpoint": 1}]})
    gce.done("POST", f"{z}/neg/attachNetworkEndpoints", {"networkEndpoints": [ep(1)]})
    resp = gce.ok("POST", f"{z}/neg/listNetworkEndpoints", {"healthStatus": "SHOW"})
    h = resp["items"][0]["healths"][0]
    assert h["healthState"] == "HEALTHY"
    assert h["backendService"]["backendService"] == bs["selfLink"]
    assert h["healthCheck"]["healthCheck"] == hc["selfLink"]
    r = gce.call("POST", f"{z}/neg/listNetworkEndpoints", {"healthStatus": "MAYBE"})
    assert_google_error(r, 400, "invalid")


def test_neg_list_and_delete(gce):
    z = f"zones/{gce.zone}/networkEndpointGroups"
    for i in range(3):
        gce.insert(z, neg_body(f"neg-{i}"))
    assert names(gce.get(z)) == ["neg-0", "neg-1", "neg-2"]
    assert names(gce.get(z, params={"filter": "name=neg-1"})) == ["neg-1"]
    agg = gce.get("aggregated/networkEndpointGroups")
    assert len(agg["items"][f"zones/{gce.zone}"]["networkEndpointGroups"]) == 3
    gce.done("DELETE", f"{z}/neg-1")
    assert names(gce.get(z)) == ["neg-0", "neg-2"]
    assert_google_error(gce.call("DELETE", f"{z}/neg-1"), 404, "notFound")
    r = gce.call("POST", z, neg_body("neg-0"))
    assert_google_error(r, 409, "alreadyExists", "ALREADY_EXISTS", contains="already exists")
