#!/usr/bin/env bash
# Renders each overlay under deploy/overlays/ with `kubectl kustomize`, applies it to a real API
# server with server-side apply, and checks what an operator relies on:
#   - the rendered manifests: every container hardened (tests/install/hardened_pods.py), no RBAC
#     wildcards, the overlay's cloud identity annotation and provider settings;
#   - the API server takes it all (Namespace with Pod Security "restricted" enforced, CRDs
#     Established) with no PodSecurity warning;
#   - the Deployment rolls out: 2 replicas Ready (pods are admitted under "restricted" and run on
#     the test ground's kwok nodes), spread over both nodes, PDB allows exactly 1 disruption,
#     the metrics Service has both endpoints, the live pods are hardened too;
#   - the ServiceAccount can do what the controller does and no more (`kubectl auth can-i`).
#
#   tests/install/deploy.sh KUBECONFIG
#
# Uses $CLOUDGATE_TEST_K8S_KUBECTL (the ground's kubectl, v1.36 with kustomize built in) or kubectl
# on PATH. The Gateway API CRDs must be installed (tests/ground/k8s/up.sh does). Deletes what it
# applied when it is done (cloudgate CRDs only if they were not there before).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/install/lib.sh
. "$HERE/lib.sh"
use_kubeconfig "${1:-}"
KUBECTL=$(pick_kubectl) || exit 2
PYTHON=${PYTHON:-python3}
k() { "$KUBECTL" "$@"; }

NS=cloudgate-system
SA=system:serviceaccount:$NS:cloudgate
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cloudgate-deploy.XXXXXX")
CRDS_BEFORE=$(k get crd -o name 2>/dev/null | grep -c 'gateway.cloudgate.io' || true)

LABELLED=()   # node labels this script added (removed again on exit)
teardown() { # rendered-file-without-namespace-and-crds
  k delete -f "$1" --ignore-not-found --wait=false >/dev/null 2>&1
  k delete namespace $NS --ignore-not-found --wait=false >/dev/null 2>&1
  k wait --for=delete namespace/$NS --timeout=90s >/dev/null 2>&1 || true
}
cleanup() {
  for f in "$WORK"/*.nocrd.yaml; do [[ -f $f ]] && teardown "$f"; done
  for l in "${LABELLED[@]}"; do k label nodes --all "${l%%=*}-" >/dev/null 2>&1; done
  if [[ "$CRDS_BEFORE" == 0 ]]; then
    k get crd -o name 2>/dev/null | grep 'gateway.cloudgate.io' | xargs -r "$KUBECTL" delete --timeout=60s >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# python3 one-liners over the rendered JSON list.
q() { "$PYTHON" -c "import json,sys; items=json.load(open(sys.argv[1]))['items']; $1" "$2"; }

k get crd gateways.gateway.networking.k8s.io >/dev/null 2>&1 ||
  { echo "the Gateway API CRDs are not installed on this API server (tests/ground/k8s/up.sh installs them)"; exit 2; }

for overlay_dir in "$ROOT"/deploy/overlays/*/; do
  overlay=$(basename "$overlay_dir")
  echo "# overlay $overlay"
  rendered=$WORK/$overlay.yaml
  if ! k kustomize "$overlay_dir" >"$rendered" 2>"$WORK/$overlay.err"; then
    not_ok "$overlay: kubectl kustomize"; sed 's/^/    /' "$WORK/$overlay.err"; continue
  fi
  ok "$overlay: kubectl kustomize ($(grep -c '^kind:' "$rendered") objects)"
  json=$WORK/$overlay.json
  # kubectl prints one JSON object per document; gather them into one List.
  if ! k create --dry-run=client -o json -f "$rendered" 2>"$WORK/$overlay.err" | "$PYTHON" -c '
import json, sys
text, dec, i, items = sys.stdin.read(), json.JSONDecoder(), 0, []
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    items.append(obj)
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)' >"$json" || [[ -s "$WORK/$overlay.err" ]]; then
    not_ok "$overlay: parse rendered manifests"; sed 's/^/    /' "$WORK/$overlay.err"; continue
  fi

  # --- static checks on the rendered manifests ---------------------------------------------------
  check "$overlay: every container hardened (rendered)" bash -c "'$PYTHON' '$HERE/hardened_pods.py' < '$json'"
  check "$overlay: no RBAC wildcards" q "
bad=[(i['kind'],i['metadata']['name'],r) for i in items if i['kind'] in ('Role','ClusterRole') for r in i.get('rules',[])
     if '*' in r.get('verbs',[])+r.get('resources',[])+r.get('apiGroups',[])]
assert not bad, bad" "$json"
  check "$overlay: no write verbs on Secrets, no delete anywhere" q "
bad=[(i['metadata']['name'],r) for i in items if i['kind'] in ('Role','ClusterRole') for r in i.get('rules',[])
     if 'delete' in r['verbs'] or 'deletecollection' in r['verbs'] or ('secrets' in r['resources'] and set(r['verbs'])-{'list','watch'})]
assert not bad, bad" "$json"
  check "$overlay: Deployment 2 replicas, envFrom the cloudgate-config ConfigMap, provider set" q "
d=[i for i in items if i['kind']=='Deployment'][0]; c=d['spec']['template']['spec']['containers'][0]
cm=[i for i in items if i['kind']=='ConfigMap' and i['metadata']['name'].startswith('cloudgate-config')][0]
assert d['spec']['replicas']==2
assert c['envFrom'][0]['configMapRef']['name']==cm['metadata']['name'], (c['envFrom'], cm['metadata']['name'])
assert c['args'][0]=='controller' and '--metrics-addr=0.0.0.0:8080' in c['args']
assert cm['data'].get('CLOUDGATE_CLUSTER_ID') and cm['data'].get('CLOUDGATE_PROVIDER') in ('aws-alb','aws-lattice','gcp'), cm['data']
assert {p['httpGet']['path'] for p in (c['livenessProbe'], c['readinessProbe'])} <= {'/healthz','/readyz'}
assert c['resources']['requests'] and c['resources']['limits']
assert len(d['spec']['template']['spec']['topologySpreadConstraints'])>=1" "$json"
  case $overlay in
    eks) want='eks.amazonaws.com/role-arn' ;;
    gke) want='iam.gke.io/gcp-service-account' ;;
    *) want='' ;;
  esac
  if [[ -n $want ]]; then
    check "$overlay: ServiceAccount annotated $want" q "
sa=[i for i in items if i['kind']=='ServiceAccount'][0]
assert sa['metadata'].get('annotations',{}).get('$want'), sa['metadata']" "$json"
  fi

  # --- apply ---------------------------------------------------------------------------------------
  # An overlay's nodeSelector names labels its cloud's nodes carry (e.g. GKE's metadata server
  # for Workload Identity); give the test nodes those labels for this overlay only,
  # before any pod exists (so the scheduler sees every eligible node at once).
  mapfile -t want_labels < <(q "
d=[i for i in items if i['kind']=='Deployment'][0]
for k, v in (d['spec']['template']['spec'].get('nodeSelector') or {}).items(): print(f'{k}={v}')" "$json")
  for l in "${want_labels[@]}"; do
    if k label nodes --all --overwrite "$l" >/dev/null; then
      LABELLED+=("$l"); echo "# labelled the test nodes $l (the overlay's nodeSelector)"
    fi
  done
  # Namespace and CRDs first (the CRDs must be Established before anything uses them), then the rest.
  pre=$WORK/$overlay.pre.yaml; rest=$WORK/$overlay.nocrd.yaml
  "$PYTHON" - "$json" "$pre" "$rest" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))["items"]
first = [i for i in items if i["kind"] in ("Namespace", "CustomResourceDefinition")]
rest = [i for i in items if i["kind"] not in ("Namespace", "CustomResourceDefinition")]
json.dump({"apiVersion": "v1", "kind": "List", "items": first}, open(sys.argv[2], "w"))
json.dump({"apiVersion": "v1", "kind": "List", "items": rest}, open(sys.argv[3], "w"))
PY
  check "$overlay: server-side apply Namespace + CRDs" k apply --server-side --field-manager=cloudgate-install-test -f "$pre"
  check "$overlay: cloudgate CRDs Established" k wait --for=condition=Established crd -l app.kubernetes.io/name=cloudgate --timeout=60s
  out=$(k apply --server-side --field-manager=cloudgate-install-test -f "$rest" 2>&1); rc=$?
  if [[ $rc -eq 0 && "$out" != *"PodSecurity"* ]]; then
    ok "$overlay: server-side apply (no PodSecurity warning)"
  else
    not_ok "$overlay: server-side apply (exit $rc)"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
  check "$overlay: namespace enforces Pod Security restricted" bash -c \
    "[[ \$('$KUBECTL' get ns $NS -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}') == restricted ]]"

  # --- the rollout on the test ground (kwok nodes run the pods; nothing is pulled) ---------------
  check "$overlay: rollout: 2/2 replicas Ready" k -n $NS rollout status deploy/cloudgate-controller --timeout=120s
  check "$overlay: pods spread over 2 nodes" bash -c \
    "[[ \$('$KUBECTL' -n $NS get pods -l app.kubernetes.io/name=cloudgate -o jsonpath='{range .items[*]}{.spec.nodeName}{\"\n\"}{end}' | sort -u | grep -c .) == 2 ]]"
  check "$overlay: live pods hardened" bash -c "'$KUBECTL' -n $NS get pods -l app.kubernetes.io/name=cloudgate -o json | '$PYTHON' '$HERE/hardened_pods.py'"
  check "$overlay: PDB minAvailable 1 allows 1 disruption" bash -c '
    for i in $(seq 1 30); do
      v=$("'"$KUBECTL"'" -n '$NS' get pdb cloudgate-controller -o jsonpath="{.spec.minAvailable}/{.status.currentHealthy}/{.status.disruptionsAllowed}")
      [[ $v == 1/2/1 ]] && exit 0; sleep 1
    done; echo "minAvailable/currentHealthy/disruptionsAllowed = $v"; exit 1'
  check "$overlay: metrics Service has 2 endpoints on 8080" bash -c '
    for i in $(seq 1 30); do
      v=$("'"$KUBECTL"'" -n '$NS' get endpointslices -l kubernetes.io/service-name=cloudgate-metrics -o jsonpath="{range .items[*].endpoints[*]}{.addresses[0]}{\"\n\"}{end}" | grep -c .)
      p=$("'"$KUBECTL"'" -n '$NS' get endpointslices -l kubernetes.io/service-name=cloudgate-metrics -o jsonpath="{.items[0].ports[0].port}")
      [[ $v == 2 && $p == 8080 ]] && exit 0; sleep 1
    done; echo "endpoints=$v port=$p"; exit 1'

  # --- RBAC as the controller's ServiceAccount ------------------------------------------------------
  can() { # expect verb resource [namespace] [subresource]
    local expect=$1 verb=$2 res=$3 ns=${4:-} sub=${5:-} got
    got=$(k auth can-i "$verb" "$res" --as="$SA" ${ns:+-n "$ns"} ${sub:+--subresource="$sub"} 2>/dev/null)
    [[ "$got" == "$expect" ]] || { echo "can-i $verb $res ${sub:+($sub) }${ns:+in $ns }: got '$got', want '$expect'"; return 1; }
  }
  rbac_allowed() {
    local r=0
    for res in gatewayclasses.gateway.networking.k8s.io gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io \
      grpcroutes.gateway.networking.k8s.io tlsroutes.gateway.networking.k8s.io tcproutes.gateway.networking.k8s.io \
      referencegrants.gateway.networking.k8s.io backendtlspolicies.gateway.networking.k8s.io services namespaces \
      endpointslices.discovery.k8s.io secrets cloudgatewayparameters.gateway.cloudgate.io \
      healthcheckpolicies.gateway.cloudgate.io backendpolicies.gateway.cloudgate.io \
      latticeaccesslogpolicies.gateway.cloudgate.io latticeauthpolicies.gateway.cloudgate.io; do
      can yes list "$res" || r=1; can yes watch "$res" || r=1
    done
    can yes patch gateways.gateway.networking.k8s.io team-a || r=1
    can yes get gateways.gateway.networking.k8s.io team-a || r=1
    can yes patch gateways.gateway.networking.k8s.io team-a status || r=1
    can yes patch gatewayclasses.gateway.networking.k8s.io "" status || r=1
    for route in httproutes grpcroutes tlsroutes tcproutes; do
      can yes get "$route.gateway.networking.k8s.io" team-a status || r=1
      can yes patch "$route.gateway.networking.k8s.io" team-a status || r=1
    done
    for policy in healthcheckpolicies backendpolicies latticeaccesslogpolicies latticeauthpolicies; do
      can yes patch "$policy.gateway.cloudgate.io" team-a status || r=1
    done
    can yes get customresourcedefinitions.apiextensions.k8s.io || r=1
    can yes create events.events.k8s.io team-a || r=1
    can yes create events.events.k8s.io default || r=1
    can yes create leases.coordination.k8s.io $NS || r=1
    can yes get leases.coordination.k8s.io/cloudgate-controller $NS || r=1
    can yes update leases.coordination.k8s.io/cloudgate-controller $NS || r=1
    return $r
  }
  rbac_denied() {
    local r=0
    can no create gateways.gateway.networking.k8s.io team-a || r=1
    can no delete gateways.gateway.networking.k8s.io team-a || r=1
    can no update gateways.gateway.networking.k8s.io team-a || r=1
    can no patch httproutes.gateway.networking.k8s.io team-a || r=1
    can no get secrets team-a || r=1
    can no create secrets team-a || r=1
    can no patch services team-a || r=1
    can no patch healthcheckpolicies.gateway.cloudgate.io team-a || r=1
    can no create cloudgatewayparameters.gateway.cloudgate.io || r=1
    can no create pods team-a || r=1
    can no patch deployments.apps $NS || r=1
    can no update customresourcedefinitions.apiextensions.k8s.io || r=1
    can no update leases.coordination.k8s.io/kube-scheduler kube-system || r=1
    can no update leases.coordination.k8s.io/other-lease $NS || r=1
    can no create leases.coordination.k8s.io kube-system || r=1
    can no '*' '*' || r=1
    return $r
  }
  check "$overlay: RBAC grants what the controller does" rbac_allowed
  check "$overlay: RBAC denies everything else checked" rbac_denied

  teardown "$rest"
  check "$overlay: removed again" bash -c "! '$KUBECTL' get ns $NS >/dev/null 2>&1"
  for l in "${want_labels[@]}"; do k label nodes --all "${l%%=*}-" >/dev/null 2>&1; done
  LABELLED=()
done

summary
