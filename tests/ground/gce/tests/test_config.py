"""Settings read from the environment: GCE_FAKE_OP_STEPS, GCE_FAKE_REQUIRE_FINGERPRINT,
GCE_FAKE_OP_AUTOCOMPLETE_SECONDS. Each case starts its own short-lived fake."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest
from conftest import ROOT, Gce, _wait_port, hc_body


@contextmanager
def own_fake(tmp_path, **env):
    port_file = tmp_path / f"port-{uuid.uuid4().hex[:6]}"
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), GCE_FAKE_QUIET="1", **env)
    full_env.pop("GROUND_CALL_LOG", None)
    proc = subprocess.Popen([sys.executable, "-m", "gce_fake", "--port", "0", "--port-file", str(port_file)],
                            env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _wait_port(port_file, proc)
        yield Gce(f"http://127.0.0.1:{port}", "cfg-test")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("steps,seen", [
    ("0", ["DONE"]),
    ("1", ["RUNNING", "DONE"]),
    ("4", ["PENDING", "PENDING", "PENDING", "RUNNING", "DONE"]),
])
def test_op_steps(tmp_path, steps, seen):
    with own_fake(tmp_path, GCE_FAKE_OP_STEPS=steps) as gce:
        op = gce.wait(gce.ok("POST", "global/healthChecks", hc_body("hc")))
        assert op["_seen"] == seen


def test_fingerprint_can_be_optional(tmp_path):
    with own_fake(tmp_path, GCE_FAKE_REQUIRE_FINGERPRINT="0") as gce:
        gce.insert("global/healthChecks", hc_body("hc"))
        gce.insert("global/backendServices", {"name": "bs", "healthChecks": ["global/healthChecks/hc"]})
        gce.done("PATCH", "global/backendServices/bs", {"timeoutSec": 5})
        r = gce.call("PATCH", "global/backendServices/bs", {"timeoutSec": 6, "fingerprint": "AAAAAAAAAAA="})
        assert r.status_code == 412  # a wrong one is still refused


def test_autocomplete_after_seconds(tmp_path):
    with own_fake(tmp_path, GCE_FAKE_OP_AUTOCOMPLETE_SECONDS="0.3") as gce:
        gce.ok("POST", "global/healthChecks", hc_body("hc"))  # never polled
        time.sleep(0.4)
        gce.insert("global/backendServices", {"name": "bs", "healthChecks": ["global/healthChecks/hc"]})
