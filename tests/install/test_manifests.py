"""Offline checks of the install manifests (no API server): the hardened-pod checker catches a
bad pod, and deploy/flux/ is wired right and its patches build on the overlays it names
(the same kustomize build Flux does, with `kubectl kustomize`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def kubectl() -> str | None:
    k = os.environ.get("CLOUDGATE_TEST_K8S_KUBECTL")
    if k and os.access(k, os.X_OK):
        return k
    return shutil.which("kubectl")


def hardened(doc: dict) -> tuple[int, str]:
    p = subprocess.run([sys.executable, str(HERE / "hardened_pods.py")], input=json.dumps(doc), capture_output=True, text=True)
    return p.returncode, p.stdout


GOOD_SC = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def deployment(sc: dict | None, init_sc: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x", **({"securityContext": sc} if sc is not None else {})}]}
    if init_sc is not None:
        spec["initContainers"] = [{"name": "init", "image": "x", "securityContext": init_sc}]
    return {"kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}, "spec": {"template": {"spec": spec}}}


def test_hardened_pod_check_passes_a_hardened_pod() -> None:
    rc, out = hardened(deployment(GOOD_SC))
    assert rc == 0 and "ok   Deployment/n/d container c" in out, out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"runAsNonRoot": None}, "runAsNonRoot is not true"),
        ({"readOnlyRootFilesystem": False}, "readOnlyRootFilesystem is not true"),
        ({"allowPrivilegeEscalation": None}, "allowPrivilegeEscalation is not false"),
        ({"capabilities": {"drop": ["NET_RAW"]}}, "capabilities.drop does not include ALL"),
        ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile.type is 'Unconfined'"),
    ],
)
def test_hardened_pod_check_fails_each_gap(change: dict, message: str) -> None:
    sc = {k: v for k, v in {**GOOD_SC, **change}.items() if v is not None}
    rc, out = hardened(deployment(sc))
    assert rc == 1 and message in out, out


def test_hardened_pod_check_covers_init_containers_and_lists() -> None:
    doc = {"kind": "List", "items": [deployment(GOOD_SC, init_sc={"runAsNonRoot": True})]}
    rc, out = hardened(doc)
    assert rc == 1 and "FAIL Deployment/n/d initContainer init" in out, out
    rc, out = hardened({"kind": "List", "items": [{"kind": "ConfigMap"}]})
    assert rc == 2, out


# ------------------------------------------------------------------------------------ Flux
def flux_docs() -> list[dict]:
    docs = []
    for f in sorted((ROOT / "deploy/flux").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in flux_docs() if d.get("kind") == kind and d["apiVersion"].startswith(("source.", "kustomize.toolkit"))}


def test_flux_wiring() -> None:
    repos = by_kind("GitRepository")
    ks = by_kind("Kustomization")
    assert set(repos) == {"gateway-api", "cloudgate"} and set(ks) == {"gateway-api-crds", "cloudgate"}
    crds, cg = ks["gateway-api-crds"]["spec"], ks["cloudgate"]["spec"]
    # CRDs first, Established before cloudgate; never pruned.
    assert crds["wait"] is True and crds["prune"] is False
    assert crds["sourceRef"]["name"] in repos and crds["path"].startswith("./config/crd/")
    assert repos["gateway-api"]["spec"]["ref"]["tag"] == "v1.5.1"
    # cloudgate after the CRDs, waits, prunes, health-checks its Deployment.
    assert cg["dependsOn"] == [{"name": "gateway-api-crds"}]
    assert cg["wait"] is True and cg["prune"] is True
    assert cg["sourceRef"]["name"] == "cloudgate"
    assert (ROOT / cg["path"]).is_dir(), cg["path"]
    assert {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cloudgate-controller", "namespace": "cloudgate-system"} in cg["healthChecks"]
    listed = yaml.safe_load((ROOT / "deploy/flux/kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (ROOT / "deploy/flux").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.skipif(kubectl() is None, reason="no kubectl (set CLOUDGATE_TEST_K8S_KUBECTL or put kubectl on PATH)")
def test_flux_patches_build_on_the_overlay(tmp_path: Path) -> None:
    cg = by_kind("Kustomization")["cloudgate"]["spec"]
    # The repository layout Flux checks out (only what the GitRepository's ignore rules admit).
    shutil.copytree(ROOT / "crds", tmp_path / "crds", ignore=shutil.ignore_patterns("src", "tests", "Cargo.toml"))
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    wrap = tmp_path / "flux-build"
    wrap.mkdir()
    rel = os.path.relpath(tmp_path / cg["path"], wrap)
    (wrap / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [rel], "patches": cg["patches"]})
    )
    out = subprocess.run([kubectl(), "kustomize", str(wrap)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    dep = next(o for o in objs if o["kind"] == "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLOUDGATE_CLUSTER_ID"]["value"] == "prod-eks-1"
    assert "fieldRef" in env["CLOUDGATE_LEADER_ELECTION_NAMESPACE"]["valueFrom"], "the overlay's env is kept"
    sa = next(o for o in objs if o["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 5 and all(c["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled" for c in crds)
    # And the result is still hardened.
    p = subprocess.run([sys.executable, str(HERE / "hardened_pods.py")], input=json.dumps({"kind": "List", "items": objs}), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
