#!/usr/bin/env bash
# smoke.sh STATE_DIR — quick end-to-end check of the cluster started by up.sh:
# a Deployment of 2 replicas + a Service; both Pods must be Ready with pod IPs (kwok) and the
# Service's EndpointSlice must list exactly those IPs as ready endpoints (with zones).
# Deletes its namespace afterwards. Exit 0 on success, non-zero otherwise.
set -euo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
STATE="$(cd "$1" && pwd)"
[[ -f "$STATE/k8s.env" ]] || { echo "[k8s/smoke] ERROR: $STATE/k8s.env missing; run up.sh first" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
source "$STATE/k8s.env"
set +a
KUBECTL="${CLOUDGATE_TEST_K8S_KUBECTL:-kubectl}"
TIMEOUT="${CLOUDGATE_TEST_K8S_TIMEOUT:-120}"
k() { "$KUBECTL" "$@"; }
log() { printf '[k8s/smoke] %s\n' "$*"; }

ns="cg-smoke-$$-$RANDOM"
cleanup() {
  local rc=$?
  log "deleting namespace $ns"
  if ! k delete namespace "$ns" --ignore-not-found --wait=true --timeout=60s >/dev/null; then
    log "WARNING: namespace $ns was not deleted within 60s"
    rc=${rc:-1}; [[ $rc -ne 0 ]] || rc=1
  fi
  if [[ $rc -eq 0 ]]; then log "PASS"; else log "FAIL"; fi
  exit "$rc"
}
trap cleanup EXIT

t0=$SECONDS
log "server $(k version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n1), nodes:"
k get nodes -L topology.kubernetes.io/zone
k create namespace "$ns" >/dev/null
k apply -n "$ns" -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
spec:
  replicas: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels: {app: smoke}
      containers:
      - name: app
        image: registry.invalid/cloudgate/smoke:never-pulled
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: smoke
spec:
  selector: {app: smoke}
  ports:
  - {name: http, port: 80, targetPort: http}
EOF
log "created Deployment smoke (2 replicas) and Service smoke in namespace $ns"

deadline=$((SECONDS + TIMEOUT))
pod_ips="" eps_ips=""
while :; do
  # ready pods: name ip node
  ready_pods="$(k get pods -n "$ns" -l app=smoke -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}' \
    | awk '$4 == "True" && $5 == "" && $2 != ""')"
  pod_ips="$(awk '{print $2}' <<<"$ready_pods" | sed '/^$/d' | sort | tr '\n' ' ')"
  eps_ips="$(k get endpointslices -n "$ns" -l kubernetes.io/service-name=smoke \
    -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{"\n"}{end}' \
    | awk '$2 == "true" {print $1}' | sort | tr '\n' ' ')"
  n_pods="$(wc -w <<<"$pod_ips")"
  if [[ "$n_pods" -eq 2 && "$pod_ips" == "$eps_ips" ]]; then break; fi
  if (( SECONDS >= deadline )); then
    log "ERROR: timed out after ${TIMEOUT}s: ready pod IPs [${pod_ips}] vs ready EndpointSlice addresses [${eps_ips}]"
    k get deploy,rs,pods -n "$ns" -o wide || true
    k get endpointslices -n "$ns" -o yaml || true
    k get events -n "$ns" --sort-by=.lastTimestamp | tail -n 20 || true
    exit 1
  fi
  sleep 0.5
done

log "pods Ready (name podIP node):"
sed 's/^/    /' <<<"$(awk '{print $1, $2, $3}' <<<"$ready_pods")"
log "EndpointSlice endpoints (address ready nodeName zone):"
k get endpointslices -n "$ns" -l kubernetes.io/service-name=smoke \
  -o jsonpath='{range .items[*].endpoints[*]}{"    "}{.addresses[0]} {.conditions.ready} {.nodeName} {.zone}{"\n"}{end}'
zones="$(k get endpointslices -n "$ns" -l kubernetes.io/service-name=smoke -o jsonpath='{.items[*].endpoints[*].zone}')"
node_zones="$(k get nodes -o jsonpath='{.items[*].metadata.labels.topology\.kubernetes\.io/zone}')"
if [[ -n "$node_zones" && "$(wc -w <<<"$zones")" -ne 2 ]]; then
  log "ERROR: nodes have zones ($node_zones) but EndpointSlice endpoints carry zones [$zones]"
  exit 1
fi
log "OK: ${n_pods} ready pods, EndpointSlice lists exactly [${eps_ips% }] as ready (zones: ${zones:-none}) in $((SECONDS - t0))s"
