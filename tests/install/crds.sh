#!/usr/bin/env bash
# Installs cloudgate's CRDs (crds/*.yaml) on a real API server and shows what its validation
# catches:
#   - every CRD is accepted (structural schema, CEL rules compile within the cost budget) and
#     becomes Established;
#   - every object under tests/install/fixtures/crds/valid/ is accepted and stored;
#   - every object under tests/install/fixtures/crds/invalid/ is rejected: kubectl exits non-zero,
#     the API server answers "... is invalid" and the message names the mistake (the file's
#     `# expect:` line);
#   - provider is immutable on CloudGatewayParameters (a CEL transition rule);
#   - the status subresource takes a GEP-713 PolicyAncestorStatus and refuses a bad condition;
#   - the printer columns show up in `kubectl get`.
# Policy status `Accepted` is written by the controller and is not checked here.
#
#   tests/install/crds.sh KUBECONFIG
#
# Uses $CLOUDGATE_TEST_K8S_KUBECTL (the test ground's kubectl) or kubectl on PATH. Removes what it
# created: its namespace and objects, and the CRDs too unless they were installed before it ran.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/install/lib.sh
. "$HERE/lib.sh"
use_kubeconfig "${1:-}"
KUBECTL=$(pick_kubectl) || exit 2
k() { "$KUBECTL" "$@"; }

FIX=$HERE/fixtures/crds
NS=cloudgate-crds-test-$$
CRD_FILES=()
for f in "$ROOT"/crds/*.yaml; do [[ $f == */kustomization.yaml ]] || CRD_FILES+=("$f"); done
CRD_NAMES=()
for f in "${CRD_FILES[@]}"; do
  CRD_NAMES+=("$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$f")")
done

# Which of our CRDs exist before we start (those are left in place).
PREEXISTING=()
for n in "${CRD_NAMES[@]}"; do
  k get crd "$n" >/dev/null 2>&1 && PREEXISTING+=("$n")
done

cleanup() {
  k delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1
  k delete cloudgatewayparameters.gateway.cloudgate.io test-alb test-lattice test-gcp --ignore-not-found >/dev/null 2>&1
  for n in "${CRD_NAMES[@]}"; do
    if [[ " ${PREEXISTING[*]} " != *" $n "* ]]; then
      k delete crd "$n" --ignore-not-found --timeout=60s >/dev/null 2>&1
    fi
  done
}
trap cleanup EXIT

echo "# API server: $(k version -o json 2>/dev/null | grep -m1 gitVersion | tr -d ' ",' | sed 's/gitVersion://' | tail -1); kubectl: $KUBECTL"

# --- install ------------------------------------------------------------------------------------
for i in "${!CRD_FILES[@]}"; do
  check "apply ${CRD_FILES[$i]#"$ROOT"/}" k apply --server-side --field-manager=cloudgate-install-test -f "${CRD_FILES[$i]}"
done
for n in "${CRD_NAMES[@]}"; do
  check "crd/$n Established" k wait --for=condition=Established "crd/$n" --timeout=60s
  check "crd/$n NamesAccepted" k wait --for=condition=NamesAccepted "crd/$n" --timeout=10s
done
check "namespace $NS" k create namespace "$NS"

# --- valid objects --------------------------------------------------------------------------------
check "valid CloudGatewayParameters accepted" k apply --server-side --field-manager=cloudgate-install-test -f "$FIX/valid/parameters.yaml"
check "valid policies accepted" k apply --server-side --field-manager=cloudgate-install-test -n "$NS" -f "$FIX/valid/policies.yaml"
check "stored: 3 CloudGatewayParameters" bash -c "[[ \$('$KUBECTL' get cloudgatewayparameters test-alb test-lattice test-gcp -o name | wc -l) == 3 ]]"
check "stored: every policy kind" k get -n "$NS" healthcheckpolicy/web-health healthcheckpolicy/grpc-health backendpolicy/web-backend latticeaccesslogpolicy/gw-logs latticeauthpolicy/route-auth
# targetRefs[].group defaults to the core group (it is a list-map key, so it needs a value).
check "targetRefs[].group defaulted to \"\"" bash -c \
  "[[ \$('$KUBECTL' get -n '$NS' healthcheckpolicy web-health -o jsonpath='{.spec.targetRefs[0].group}|{.spec.targetRefs[0].kind}') == '|Service' ]]"

# --- invalid objects ------------------------------------------------------------------------------
for f in "$FIX"/invalid/*.yaml; do
  name=$(basename "$f" .yaml)
  expect=$(sed -n 's/^# expect: //p' "$f" | head -1)
  obj=$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$f")
  kind=$(awk '/^kind:/{print $2; exit}' "$f")
  out=$(k create -n "$NS" -f "$f" 2>&1)
  rc=$?
  if [[ $rc -ne 0 && "$out" == *"is invalid"* && "$out" == *"$expect"* ]] && ! k get -n "$NS" "$kind.gateway.cloudgate.io/$obj" >/dev/null 2>&1; then
    ok "rejected $name: $(printf '%s' "$out" | tr '\n' ' ' | sed 's/  */ /g' | cut -c1-220)"
  else
    not_ok "rejected $name (want non-zero exit, \"is invalid\", \"$expect\"; got exit $rc)"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
done

# --- transition rule: provider is immutable ------------------------------------------------------
out=$(k patch cloudgatewayparameters test-gcp --type merge -p '{"spec":{"provider":"aws-lattice","scheme":null,"subnets":null,"project":null,"network":null,"defaultTags":null}}' 2>&1)
rc=$?
if [[ $rc -ne 0 && "$out" == *"provider is immutable"* ]]; then ok "provider change rejected: provider is immutable"; else not_ok "provider change rejected (exit $rc): $out"; fi
check "other fields stay mutable" k patch cloudgatewayparameters test-gcp --type merge -p '{"spec":{"region":"us-east1"}}'

# --- status subresource: GEP-713 PolicyAncestorStatus shape ---------------------------------------
status='{"status":{"ancestors":[{"ancestorRef":{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"gw"},"controllerName":"cloudgate.io/gateway-controller","conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"applied","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}]}}'
check "status subresource takes a PolicyAncestorStatus" k patch -n "$NS" healthcheckpolicy web-health --subresource=status --type merge -p "$status"
check "ACCEPTED printer column shows the condition" bash -c \
  "'$KUBECTL' get -n '$NS' healthcheckpolicy web-health | tee /dev/stderr | grep -Eq '^NAME +PROTOCOL +PATH +ACCEPTED +AGE' && '$KUBECTL' get -n '$NS' healthcheckpolicy web-health --no-headers | grep -Eq '^web-health +HTTP +/healthz +True '"
bad=${status/\"status\":\"True\"/\"status\":\"Maybe\"}
out=$(k patch -n "$NS" healthcheckpolicy web-health --subresource=status --type merge -p "$bad" 2>&1)
rc=$?
if [[ $rc -ne 0 && "$out" == *"is invalid"* && "$out" == *"Unsupported value"* ]]; then ok "status condition with status Maybe rejected"; else not_ok "status condition with status Maybe rejected (exit $rc): $out"; fi
check "spec edits do not touch status (status subresource)" bash -c \
  "'$KUBECTL' patch -n '$NS' healthcheckpolicy web-health --type merge -p '{\"status\":null,\"spec\":{\"path\":\"/ready\"}}' >/dev/null && [[ \$('$KUBECTL' get -n '$NS' healthcheckpolicy web-health -o jsonpath='{.status.ancestors[0].controllerName}') == cloudgate.io/gateway-controller ]]"

check "kubectl get cloudgatewayparameters shows PROVIDER/REGION/NETWORK/SCHEME" bash -c \
  "'$KUBECTL' get cgparams test-alb | grep -Eq '^NAME +PROVIDER +REGION +NETWORK +SCHEME +AGE'"
check "category: kubectl get cloudgate lists every kind" bash -c \
  "[[ \$('$KUBECTL' get cloudgate -A -o name | wc -l) -ge 8 ]]"

summary
