"""The real gcloud CLI against the fake: a second, independent client.

gcloud talks to the fake through api_endpoint_overrides/compute with
credentials disabled; it polls operations with `wait`, does read-modify-write
updates with fingerprints, lists through aggregatedList, and sends several
deletes as one multipart batch request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import requests

GCLOUD = shutil.which("gcloud")
if GCLOUD is None:
    print("test_gcloud: skipped, gcloud is not installed on this machine (install google-cloud-cli to run it)")
pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (needs google-cloud-cli)")

ZONE = "us-central1-a"
REGION = "us-central1"


class Gcloud:
    def __init__(self, config_dir, endpoint, project):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
        self.env.update({"CLOUDSDK_CONFIG": str(config_dir), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"})
        self.project = project
        self.endpoint = endpoint
        for prop, value in [
            ("auth/disable_credentials", "true"),
            ("api_endpoint_overrides/compute", f"{endpoint}/compute/v1/"),
            ("core/project", project),
            ("core/disable_usage_reporting", "true"),
            ("component_manager/disable_update_check", "true"),
            ("survey/disable_prompts", "true"),
        ]:
            self(["config", "set", prop, value])

    def __call__(self, args, ok=True, fmt_json=False):
        cmd = [GCLOUD, *args, "--quiet"]
        if fmt_json:
            cmd.append("--format=json")
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180)
        if ok and p.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}\n{p.stdout}")
        if not ok and p.returncode == 0:
            raise AssertionError(f"{' '.join(args)} unexpectedly succeeded:\n{p.stdout}")
        if fmt_json and ok:
            return json.loads(p.stdout or "null")
        return p

    def link(self, path):
        return f"{self.endpoint}/compute/v1/projects/{self.project}/{path}"


@pytest.fixture
def gcloud(fake, tmp_path):
    return Gcloud(tmp_path / "gcloud-config", fake["endpoint"], f"gc-{uuid.uuid4().hex[:10]}")


def calls(gc):
    return requests.get(f"{gc.endpoint}/_ground/calls", timeout=10).json()["calls"]


def test_gcloud_global_load_balancer_lifecycle(gcloud):
    gc = gcloud
    gc(["compute", "health-checks", "create", "http", "hc", "--global", "--port", "8080",
        "--request-path", "/healthz"])
    hc = gc(["compute", "health-checks", "describe", "hc", "--global"], fmt_json=True)
    assert hc["httpHealthCheck"]["port"] == 8080 and hc["httpHealthCheck"]["requestPath"] == "/healthz"
    assert hc["selfLink"] == gc.link("global/healthChecks/hc")

    gc(["compute", "backend-services", "create", "bs", "--global", "--protocol", "HTTP", "--health-checks", "hc",
        "--load-balancing-scheme", "EXTERNAL_MANAGED"])

    gc(["compute", "network-endpoint-groups", "create", "neg", "--zone", ZONE,
        "--network-endpoint-type=gce-vm-ip-port", "--network", "default", "--default-port", "8080"])
    gc(["compute", "network-endpoint-groups", "update", "neg", "--zone", ZONE,
        "--add-endpoint=instance=gke-node-1,ip=10.4.0.7,port=8080",
        "--add-endpoint=instance=gke-node-2,ip=10.4.0.8"])
    eps = gc(["compute", "network-endpoint-groups", "list-network-endpoints", "neg", "--zone", ZONE], fmt_json=True)
    assert sorted((e["networkEndpoint"]["ipAddress"], e["networkEndpoint"]["port"]) for e in eps) == [
        ("10.4.0.7", 8080), ("10.4.0.8", 8080)]
    gc(["compute", "network-endpoint-groups", "update", "neg", "--zone", ZONE,
        "--remove-endpoint=instance=gke-node-2,ip=10.4.0.8,port=8080"])
    eps = gc(["compute", "network-endpoint-groups", "list-network-endpoints", "neg", "--zone", ZONE], fmt_json=True)
    assert [e["networkEndpoint"]["ipAddress"] for e in eps] == ["10.4.0.7"]

    # add-backend is a get + update(PUT) carrying the fingerprint it read
    gc(["compute", "backend-services", "add-backend", "bs", "--global", "--network-endpoint-group", "neg",
        "--network-endpoint-group-zone", ZONE, "--balancing-mode", "RATE", "--max-rate-per-endpoint", "100"])
    bs = gc(["compute", "backend-services", "describe", "bs", "--global"], fmt_json=True)
    assert bs["backends"][0]["group"] == gc.link(f"zones/{ZONE}/networkEndpointGroups/neg")
    assert bs["loadBalancingScheme"] == "EXTERNAL_MANAGED"

    gc(["compute", "url-maps", "create", "um", "--default-service", "bs"])
    gc(["compute", "url-maps", "add-path-matcher", "um", "--path-matcher-name", "pm", "--default-service", "bs",
        "--new-hosts", "shop.example.com", "--path-rules", "/api/*=bs"])
    maps = gc(["compute", "url-maps", "list"], fmt_json=True)
    assert [m["name"] for m in maps] == ["um"]
    assert maps[0]["hostRules"] == [{"hosts": ["shop.example.com"], "pathMatcher": "pm"}]
    assert maps[0]["pathMatchers"][0]["pathRules"][0]["paths"] == ["/api/*"]

    gc(["compute", "target-http-proxies", "create", "thp", "--url-map", "um"])
    gc(["compute", "addresses", "create", "vip", "--global"])
    gc(["compute", "forwarding-rules", "create", "fr", "--global", "--target-http-proxy", "thp", "--ports", "80",
        "--address", "vip", "--load-balancing-scheme", "EXTERNAL_MANAGED"])
    vip = gc(["compute", "addresses", "describe", "vip", "--global"], fmt_json=True)
    fr = gc(["compute", "forwarding-rules", "describe", "fr", "--global"], fmt_json=True)
    assert fr["IPAddress"] == vip["address"] and vip["status"] == "IN_USE"
    gc(["compute", "forwarding-rules", "update", "fr", "--global", "--update-labels", "cloudgate=owned"])
    fr = gc(["compute", "forwarding-rules", "describe", "fr", "--global"], fmt_json=True)
    assert fr["labels"] == {"cloudgate": "owned"}

    # deleting something still referenced fails the GCE way
    p = gc(["compute", "backend-services", "delete", "bs", "--global"], ok=False)
    assert "is already being used by" in p.stderr and "urlMaps/um" in p.stderr

    # teardown, children first; the two last deletes go out as one batch request
    gc(["compute", "forwarding-rules", "delete", "fr", "--global"])
    gc(["compute", "addresses", "delete", "vip", "--global"])
    gc(["compute", "target-http-proxies", "delete", "thp"])
    gc(["compute", "url-maps", "delete", "um"])
    gc(["compute", "backend-services", "delete", "bs", "--global"])
    gc(["compute", "network-endpoint-groups", "delete", "neg", "--zone", ZONE])
    gc(["compute", "health-checks", "create", "tcp", "hc2", "--global", "--port", "443"])
    gc(["compute", "health-checks", "delete", "hc", "hc2", "--global"])
    assert gc(["compute", "url-maps", "list"], fmt_json=True) == []
    assert gc(["compute", "health-checks", "list"], fmt_json=True) == []
    assert gc(["compute", "network-endpoint-groups", "list"], fmt_json=True) == []

    made = {c["method"] for c in calls(gc)}
    for m in ("compute.globalOperations.wait", "compute.zoneOperations.wait", "compute.backendServices.update",
              "compute.urlMaps.update", "compute.urlMaps.aggregatedList",
              "compute.networkEndpointGroups.attachNetworkEndpoints",
              "compute.networkEndpointGroups.detachNetworkEndpoints", "compute.globalForwardingRules.setLabels"):
        assert m in made, m


def test_gcloud_regional_resources_and_firewall(gcloud):
    gc = gcloud
    gc(["compute", "health-checks", "create", "http", "rhc", "--region", REGION, "--port", "8080"])
    gc(["compute", "backend-services", "create", "rbs", "--region", REGION, "--protocol", "HTTP",
        "--health-checks", "rhc", "--health-checks-region", REGION, "--load-balancing-scheme", "INTERNAL_MANAGED"])
    gc(["compute", "url-maps", "create", "rum", "--region", REGION, "--default-service", "rbs"])
    rum = gc(["compute", "url-maps", "describe", "rum", "--region", REGION], fmt_json=True)
    assert rum["defaultService"] == gc.link(f"regions/{REGION}/backendServices/rbs")
    assert rum["region"] == gc.link(f"regions/{REGION}")
    gc(["compute", "firewall-rules", "create", "allow-hc", "--allow", "tcp:8080",
        "--source-ranges", "130.211.0.0/22,35.191.0.0/16"])
    fw = gc(["compute", "firewall-rules", "describe", "allow-hc"], fmt_json=True)
    assert fw["network"] == gc.link("global/networks/default") and fw["priority"] == 1000
    nets = gc(["compute", "networks", "list"], fmt_json=True)
    assert [n["name"] for n in nets] == ["default"]
    gc(["compute", "url-maps", "delete", "rum", "--region", REGION])
    gc(["compute", "backend-services", "delete", "rbs", "--region", REGION])
    gc(["compute", "health-checks", "delete", "rhc", "--region", REGION])
    gc(["compute", "firewall-rules", "delete", "allow-hc"])


def test_gcloud_reports_reference_and_validation_errors(gcloud):
    gc = gcloud
    p = gc(["compute", "url-maps", "create", "um", "--default-service", "missing-bs"], ok=False)
    assert "was not found" in p.stderr
    p = gc(["compute", "target-http-proxies", "create", "thp", "--url-map", "missing-um"], ok=False)
    assert "was not found" in p.stderr
    p = gc(["compute", "health-checks", "create", "http", "bad", "--global", "--check-interval", "5s",
            "--timeout", "10s"], ok=False)
    assert "timeoutSec" in p.stderr
