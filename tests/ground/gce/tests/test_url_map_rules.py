"""URL map route rules as compute.v1 describes them beyond the schema: one path match per match
rule, path templates and their rewrites, regular expressions only where the scheme allows them,
and no httpsRedirect behind a target HTTPS proxy."""

from __future__ import annotations

import pytest
from conftest import assert_google_error, hc_body, neg_body


@pytest.fixture
def bs(gce):
    """A global EXTERNAL_MANAGED backend service with a zonal NEG."""
    hc = gce.insert("global/healthChecks", hc_body("hc"))
    neg = gce.insert(f"zones/{gce.zone}/networkEndpointGroups", neg_body("neg"))
    return gce.insert("global/backendServices", {
        "name": "bs", "loadBalancingScheme": "EXTERNAL_MANAGED", "healthChecks": [hc["selfLink"]],
        "backends": [{"group": neg["selfLink"], "balancingMode": "RATE", "maxRatePerEndpoint": 10}]})


def url_map(bs, name, *rules):
    action = {"weightedBackendServices": [{"backendService": bs["selfLink"], "weight": 1}]}
    return {"name": name, "defaultService": bs["selfLink"],
            "hostRules": [{"hosts": ["*"], "pathMatcher": "pm"}],
            "pathMatchers": [{"name": "pm", "defaultService": bs["selfLink"],
                              "routeRules": [{"priority": i + 1, "routeAction": dict(action), **r}
                                             for i, r in enumerate(rules)]}]}


def test_templates_and_rewrites_that_compute_accepts(gce, bs):
    um = gce.insert("global/urlMaps", url_map(
        bs, "ok",
        {"matchRules": [{"fullPathMatch": "/legacy"}],
         "routeAction": {"weightedBackendServices": [{"backendService": bs["selfLink"], "weight": 1}],
                         "urlRewrite": {"pathPrefixRewrite": "/index.html", "hostRewrite": "legacy.internal"}}},
        {"matchRules": [{"pathTemplateMatch": "/legacy/{path=**}"}],
         "routeAction": {"weightedBackendServices": [{"backendService": bs["selfLink"], "weight": 1}],
                         "urlRewrite": {"pathTemplateRewrite": "/index.html"}}},
        {"matchRules": [{"pathTemplateMatch": "/{country}/{format}/{rest=**}"}],
         "routeAction": {"weightedBackendServices": [{"backendService": bs["selfLink"], "weight": 1}],
                         "urlRewrite": {"pathTemplateRewrite": "/content/{format}/{country}/{rest}"}}},
    ))
    rules = um["pathMatchers"][0]["routeRules"]
    assert rules[1]["matchRules"] == [{"pathTemplateMatch": "/legacy/{path=**}"}]
    assert rules[1]["routeAction"]["urlRewrite"] == {"pathTemplateRewrite": "/index.html"}


@pytest.mark.parametrize("rule, contains", [
    ({"matchRules": [{"prefixMatch": "/a", "fullPathMatch": "/a"}]}, "Precisely one of"),
    ({"matchRules": [{"headerMatches": [{"headerName": "x", "exactMatch": "1"}]}]}, "Precisely one of"),
    ({"matchRules": [{"prefixMatch": "a/"}]}, "Must start with '/'"),
    ({"matchRules": [{"pathTemplateMatch": "/a/{x=**}/b"}]}, "last operator"),
    ({"matchRules": [{"pathTemplateMatch": "/a*b"}]}, "neither a literal nor an operator"),
    ({"matchRules": [{"pathTemplateMatch": "/{a}/{b}/{c}/{d}/{e}/{f}"}]}, "At most 5 operators"),
    ({"matchRules": [{"prefixMatch": "/a/"}],
      "routeAction": {"urlRewrite": {"pathTemplateRewrite": "/b"}}}, "needs a pathTemplateMatch"),
    ({"matchRules": [{"pathTemplateMatch": "/a/**"}],
      "routeAction": {"urlRewrite": {"pathTemplateRewrite": "/b"}}}, "At least one variable"),
    ({"matchRules": [{"pathTemplateMatch": "/a/{x=**}"}],
      "routeAction": {"urlRewrite": {"pathTemplateRewrite": "/b/{y}"}}}, "do not exist"),
    ({"matchRules": [{"prefixMatch": "/a/"}],
      "routeAction": {"urlRewrite": {"pathPrefixRewrite": "/b/",
                                     "regexRewrite": {"pathPattern": ".*", "pathSubstitution": "/c"}}}},
     "Only one of pathPrefixRewrite"),
])
def test_route_rules_compute_refuses(gce, bs, rule, contains):
    body = url_map(bs, "bad", rule)
    action = body["pathMatchers"][0]["routeRules"][0]["routeAction"]
    action.update({k: v for k, v in (rule.get("routeAction") or {}).items()})
    assert_google_error(gce.call("POST", "global/urlMaps", body), 400, "invalid", contains=contains)


def test_regex_only_where_the_scheme_allows_it(gce, bs):
    rule = {"matchRules": [{"regexMatch": "/v[0-9]+/.*"}]}
    # Global URL map in front of EXTERNAL_MANAGED backend services: refused.
    assert_google_error(gce.call("POST", "global/urlMaps", url_map(bs, "global-re", rule)), 400, "invalid",
                        contains="Regular expressions")
    header = {"matchRules": [{"prefixMatch": "/", "headerMatches": [{"headerName": "x", "regexMatch": "a.*"}]}]}
    assert_google_error(gce.call("POST", "global/urlMaps", url_map(bs, "global-re2", header)), 400, "invalid",
                        contains="Regular expressions")
    # Regional EXTERNAL_MANAGED: allowed.
    region = gce.region
    hc = gce.insert(f"regions/{region}/healthChecks", hc_body("rhc"))
    rbs = gce.insert(f"regions/{region}/backendServices", {
        "name": "rbs", "loadBalancingScheme": "EXTERNAL_MANAGED", "protocol": "HTTP", "healthChecks": [hc["selfLink"]]})
    um = gce.insert(f"regions/{region}/urlMaps", url_map(rbs, "regional-re", rule))
    assert um["pathMatchers"][0]["routeRules"][0]["matchRules"] == [{"regexMatch": "/v[0-9]+/.*"}]


def test_https_redirect_never_behind_a_target_https_proxy(gce, bs, tls_pair):
    cert, key = tls_pair
    ssl = gce.insert("global/sslCertificates", {"name": "cert", "certificate": cert, "privateKey": key})
    redirect = {"name": "to-https", "defaultUrlRedirect": {"httpsRedirect": True}}
    um_redirect = gce.insert("global/urlMaps", redirect)
    # Fine behind HTTP.
    gce.insert("global/targetHttpProxies", {"name": "http", "urlMap": um_redirect["selfLink"]})
    r = gce.call("POST", "global/targetHttpsProxies",
                 {"name": "https", "urlMap": um_redirect["selfLink"], "sslCertificates": [ssl["selfLink"]]})
    assert_google_error(r, 400, "invalid", contains="httpsRedirect")
    # A URL map already behind HTTPS cannot gain one either.
    um = gce.insert("global/urlMaps", {"name": "plain", "defaultService": bs["selfLink"]})
    gce.insert("global/targetHttpsProxies", {"name": "https", "urlMap": um["selfLink"], "sslCertificates": [ssl["selfLink"]]})
    um = gce.get(um["selfLink"])
    r = gce.call("PUT", um["selfLink"], {"name": "plain", "defaultUrlRedirect": {"httpsRedirect": True},
                                         "fingerprint": um["fingerprint"]})
    assert_google_error(r, 400, "invalid", contains="httpsRedirect")
