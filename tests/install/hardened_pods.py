#!/usr/bin/env python3
"""Checks that every container of every pod (or pod template) in a Kubernetes JSON document is
hardened: runs as non-root (container or pod level), read-only root filesystem, no privilege
escalation, no privileges, all capabilities dropped, RuntimeDefault (or Localhost) seccomp.

    kubectl get pods -o json | tests/install/hardened_pods.py
    kubectl create --dry-run=client -o json -f rendered.yaml | tests/install/hardened_pods.py

Reads a single object, a `List`, or a stream of JSON objects on stdin. Prints one line per
container checked and exits 1 if any container fails, 2 if there was nothing to check.
Standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterator

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def objects(text: str) -> Iterator[dict[str, Any]]:
    dec = json.JSONDecoder()
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return
        obj, i = dec.raw_decode(text, i)
        if obj.get("kind", "").endswith("List") and "items" in obj:
            yield from obj["items"]
        else:
            yield obj


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = obj.get("kind", "")
    name = f"{kind}/{obj.get('metadata', {}).get('namespace', '')}/{obj.get('metadata', {}).get('name', '')}"
    if kind == "Pod":
        yield name, obj.get("spec", {})
    elif kind in WORKLOADS:
        yield name, obj.get("spec", {}).get("template", {}).get("spec", {})
    elif kind == "CronJob":
        yield name, obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})


def container_problems(pod: dict[str, Any], c: dict[str, Any]) -> list[str]:
    psc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    problems = []

    def eff(key: str) -> Any:
        return sc[key] if key in sc else psc.get(key)

    run_as_user = eff("runAsUser")
    if not (eff("runAsNonRoot") is True or (isinstance(run_as_user, int) and run_as_user != 0)):
        problems.append("runAsNonRoot is not true (and runAsUser is not a non-zero uid)")
    if eff("runAsNonRoot") is True and run_as_user == 0:
        problems.append("runAsNonRoot with runAsUser 0 can never start")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        problems.append("privileged")
    drop = (sc.get("capabilities") or {}).get("drop") or []
    if "ALL" not in drop:
        problems.append("capabilities.drop does not include ALL")
    add = (sc.get("capabilities") or {}).get("add") or []
    if add:
        problems.append(f"capabilities.add {add}")
    seccomp = (eff("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"seccompProfile.type is {seccomp!r}, not RuntimeDefault")
    return problems


def main() -> int:
    failed = checked = 0
    for obj in objects(sys.stdin.read()):
        for name, pod in pod_specs(obj):
            if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
                print(f"FAIL {name}: uses host namespaces")
                failed += 1
            for field in ("initContainers", "containers", "ephemeralContainers"):
                for c in pod.get(field) or []:
                    checked += 1
                    problems = container_problems(pod, c)
                    if problems:
                        failed += 1
                        print(f"FAIL {name} {field[:-1]} {c.get('name')}: " + "; ".join(problems))
                    else:
                        print(f"ok   {name} {field[:-1]} {c.get('name')}")
    if checked == 0:
        print("no containers found in the input")
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
