#!/usr/bin/env bash
# Runs the official Gateway API conformance suite (v1.5.1) against the cloudgate controller on
# the local test ground, one provider at a time:
#
#   tests/conformance/run.sh OUT_DIR
#
# Needs the ground's environment (KUBECONFIG, AWS_ENDPOINT_URL, GCE_* from STATE/*.env, as
# tests/run exports them) and the controller binary ($CLOUDGATE_BIN, default debug/cloudgate in
# cargo's target directory, built by tests/run's cargo phases). For each provider it
# prepares the cloud network the controller needs, starts `cloudgate controller`, creates the
# GatewayClass `cloudgate-<provider>`, runs the suite (profiles from that class's
# status.supportedFeatures, data-plane tests skipped per skip.txt) and writes
# OUT_DIR/report-<provider>.yaml (the suite's ConformanceReport) plus the controller's log,
# then deletes the suite's namespaces and fails if the cloud still holds anything the run's
# cluster id owns (leaks.py).
# The last line is the total over all providers: "N passed, N failed, N skipped, N xfailed in
# Ts" (xfailed: known-failures.txt, tests a provider's cloud cannot pass; they still count as
# failures in the report).
#
# Environment:
#   CLOUDGATE_CONFORMANCE_PROVIDERS  providers to run, space separated, or "all" (default gcp:
#                                    the one provider whose cloud expresses every Core feature of
#                                    the profiles it claims, and about as fast on the ground as
#                                    aws-alb; see README "Conformance")
#   CLOUDGATE_CONFORMANCE_ARGS       extra suite flags, e.g. "-run-test GatewayModifyListeners -debug"
#   CLOUDGATE_CACHE                  where the suite's test binary is cached (~/.cache/cloudgate)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:?usage: run.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}
if [[ -z ${CLOUDGATE_BIN:-} ]]; then
  # Wherever cargo put it (CARGO_TARGET_DIR, a cargo config, or ./target): ask cargo.
  target=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || target=
  CLOUDGATE_BIN=${target:-${CARGO_TARGET_DIR:-$CACHE/cargo-target}}/debug/cloudgate
fi
GATEWAY_API_VERSION=v1.5.1
PROVIDERS=${CLOUDGATE_CONFORMANCE_PROVIDERS:-gcp}
[[ $PROVIDERS == all ]] && PROVIDERS="aws-alb aws-lattice gcp"

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { printf '[conformance] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -n ${KUBECONFIG:-} ]] || die "KUBECONFIG is not set: run via tests/run (or source the ground's STATE/*.env)"
[[ -x $CLOUDGATE_BIN ]] || die "no controller binary at $CLOUDGATE_BIN (cargo build, or set CLOUDGATE_BIN)"
KUBECTL=${CLOUDGATE_TEST_K8S_KUBECTL:-kubectl}

# --------------------------------------------------------------------- the suite's test binary
# Cached by everything that goes into it, so a rerun starts at once.
build_suite() {
  if ! command -v go >/dev/null 2>&1; then
    [[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH" || die "go not found in PATH"
  fi
  export GOWORK=off GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0 GOPROXY=${GOPROXY:-https://proxy.golang.org}
  unset GOFLAGS
  local hash dir
  hash=$( { cat "$HERE/go.mod" "$HERE/go.sum" "$HERE"/*_test.go; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-12)
  dir="$CACHE/conformance-gwapi-$GATEWAY_API_VERSION-$hash"
  SUITE_BIN="$dir/conformance.test"
  if [[ -x $SUITE_BIN ]]; then log "suite binary cached: $SUITE_BIN"; return; fi
  mkdir -p "$dir"
  log "building the suite binary (sigs.k8s.io/gateway-api/conformance $GATEWAY_API_VERSION) into $dir"
  (cd "$HERE" && go test -c -o "$dir/conformance.test.tmp" .) || die "go test -c failed"
  mv "$dir/conformance.test.tmp" "$SUITE_BIN"
}

# --------------------------------------------------------------------- per provider
# What each provider's controller needs from its cloud: a VPC (and, for ALB, two subnets in two
# zones) created on the AWS endpoint; GCP needs only the project from the ground.
aws_network() { # subnets: 0 or 2
  "${CLOUDGATE_AWS_VENV:?CLOUDGATE_AWS_VENV is not set (aws.env)}/bin/python" - "$1" <<'PY'
import random, sys
import boto3
ec2 = boto3.client("ec2")
octet = random.randint(10, 249)
vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
           for i, zone in enumerate(["us-east-1a", "us-east-1b"][: int(sys.argv[1])])]
print(vpc, ",".join(subnets))
PY
}

# A service network associated with VPC $1, created as someone other than cloudgate would
# (no cloudgate tags); prints its name.
lattice_shared_network() {
  "${CLOUDGATE_AWS_VENV:?CLOUDGATE_AWS_VENV is not set (aws.env)}/bin/python" - "$1" <<'PY'
import random, sys
import boto3
lattice = boto3.client("vpc-lattice")
name = f"shared-mesh-{random.randint(0, 1 << 30):08x}"
sn = lattice.create_service_network(name=name)
lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=sys.argv[1])
print(name)
PY
}

# Sets CONTROLLER_ARGS (the provider's controller flags), SUITE_ARGS (its suite flags) and
# CLASS_PARAMETERS (a CloudGatewayParameters for the class's parametersRef, if it needs one).
prepare_provider() {
  local net
  SUITE_ARGS=()
  CLASS_PARAMETERS=
  case "$1" in
    aws-alb)
      net=$(aws_network 2) || return 1
      CONTROLLER_ARGS=(--provider aws-alb --vpc-id "${net% *}" --subnets "${net#* }") ;;
    aws-lattice)
      # Lattice associates a VPC with one service network, and the suite's base manifests hold
      # several Gateways: the class adopts one network the "platform team" made and associated
      # with the VPC, which is how Lattice is run with many Gateways.
      net=$(aws_network 0) || return 1
      local sn; sn=$(lattice_shared_network "${net% *}") || return 1
      CONTROLLER_ARGS=(--provider aws-lattice --vpc-id "${net% *}")
      "$KUBECTL" apply --server-side --field-manager=cloudgate-conformance -k "$ROOT/crds/" >/dev/null || return 1
      "$KUBECTL" wait --for condition=Established --timeout=60s crd/cloudgatewayparameters.gateway.cloudgate.io >/dev/null || return 1
      "$KUBECTL" apply -f - >/dev/null <<EOF || return 1
apiVersion: gateway.cloudgate.io/v1alpha1
kind: CloudGatewayParameters
metadata: {name: conformance-aws-lattice}
spec: {provider: aws-lattice, network: "${net% *}", serviceNetwork: {mode: Adopt, name: "$sn"}}
EOF
      CLASS_PARAMETERS=conformance-aws-lattice ;;
    gcp)
      CONTROLLER_ARGS=(--provider gcp --gcp-project "${GCE_PROJECT:?GCE_PROJECT is not set (gce.env)}" --region "${GCE_REGION:?}")
      gcp_zones || return 1
      # GatewayStaticAddresses: a usable address is one the project reserved; the unusable
      # one (TEST-NET-1) is reserved nowhere.
      local ip; ip=$(gcp_reserve_address cloudgate-conformance-usable) || return 1
      SUITE_ARGS=(-usable-address "$ip" -unusable-address 192.0.2.10) ;;
    *) return 1 ;;
  esac
}

# NEG endpoints sit in their node's zone, and the ground's kwok nodes are in AWS zones, which
# Compute rejects: move them to the GCE region's zones (the suite's pods are created after).
gcp_zones() {
  local i=0 node zones=(a b c)
  for node in $("$KUBECTL" get nodes -l type=kwok -o name); do
    "$KUBECTL" label --overwrite "$node" "topology.kubernetes.io/region=$GCE_REGION" \
      "topology.kubernetes.io/zone=$GCE_REGION-${zones[i % 3]}" >/dev/null || return 1
    i=$((i + 1))
  done
}

# Reserves a global address on the Compute endpoint and prints its IP.
gcp_reserve_address() {
  local base="${GCE_ENDPOINT%/}/compute/v1/projects/$GCE_PROJECT/global/addresses" ip
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"name\": \"$1\"}" "$base" >/dev/null || true
  for _ in $(seq 1 50); do
    ip=$(curl -sf "$base/$1" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a.get("address",""))' 2>/dev/null)
    [[ -n $ip ]] && { echo "$ip"; return 0; }
    sleep 0.2
  done
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

CONTROLLER_PID=
stop_controller() {
  if [[ -n $CONTROLLER_PID ]]; then
    kill "$CONTROLLER_PID" 2>/dev/null
    wait "$CONTROLLER_PID" 2>/dev/null
    CONTROLLER_PID=
  fi
}
trap stop_controller EXIT

TOTAL_P=0 TOTAL_F=0 TOTAL_S=0 TOTAL_X=0 PASS_RC=0
run_provider() {
  local p=$1 port class="cloudgate-$1" controller="cloudgate.io/conformance-$1"
  prepare_provider "$p" || { log "$p: cannot prepare its cloud"; TOTAL_F=$((TOTAL_F + 1)); return; }
  port=$(free_port)
  log "$p: starting cloudgate controller ${CONTROLLER_ARGS[*]} (log $OUT/controller-$p.log)"
  RUST_LOG=${RUST_LOG:-info,cloudgate=debug} "$CLOUDGATE_BIN" controller --cluster-id "conformance-$p" \
    --controller-name "$controller" --lease-name "conformance-$p" --leader-election-namespace default \
    --metrics-addr "127.0.0.1:$port" --resync-period 10m "${CONTROLLER_ARGS[@]}" >"$OUT/controller-$p.log" 2>&1 &
  CONTROLLER_PID=$!
  local pref=""
  [[ -n $CLASS_PARAMETERS ]] && pref="  parametersRef: {group: gateway.cloudgate.io, kind: CloudGatewayParameters, name: $CLASS_PARAMETERS}"
  "$KUBECTL" apply -f - >/dev/null <<EOF || die "cannot create GatewayClass $class"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: $class
spec:
  controllerName: $controller
$pref
EOF
  # Build/version as the report's implementation version: the crate version and the commit.
  local version
  version="v$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
  version="$version-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

  local common=(-gateway-class "$class" -skip-file "$HERE/skip.txt" -known-failures "$HERE/known-failures.txt"
    -organization cloudgate -project cloudgate -url https://github.com/cloudgate/cloudgate
    -contact https://github.com/cloudgate/cloudgate/issues -version "$version" -mode "$p"
    -cleanup-base-resources=false -allow-crds-mismatch=false "${SUITE_ARGS[@]}")
  log "$p: running the suite (report $OUT/report-$p.yaml)"
  suite_pass "$OUT/suite-$p.log" "${common[@]}" -report-output "$OUT/report-$p.yaml"
  # No status halves after a broken main pass (e.g. its setup failed): they would break alike.
  if tally "$p" "$OUT/suite-$p.log" && [[ -z ${CLOUDGATE_CONFORMANCE_ARGS:-} ]]; then
    log "$p: running the status halves of status-halves.txt (traffic subtests skipped)"
    local halves=("${common[@]}" -status-halves "$HERE/status-halves.txt" -test.skip '^TestConformance$/./(?i)(request|connection)')
    suite_pass "$OUT/status-halves-$p.log" "${halves[@]}"
    # The suite re-applies its base manifests with get-then-update; the controller writing a
    # Gateway's metadata in between makes that update 409 and the whole pass stop in setup.
    # That is the suite's race, not a result: such a pass is run once more.
    if grep -q 'Test Setup: Applying base manifests' "$OUT/status-halves-$p.log" && grep -q 'the object has been modified' "$OUT/status-halves-$p.log" \
      && ! grep -qE '^[0-9]+ passed, ' "$OUT/status-halves-$p.log"; then
      log "$p: the status halves' setup lost an update race (409); running them once more"
      suite_pass "$OUT/status-halves-$p.log" "${halves[@]}"
    fi
    tally "$p status halves" "$OUT/status-halves-$p.log"
  fi
  # Delete what the suite left (its base Gateways), while this controller still runs to clear
  # their finalizers and cloud resources; then nothing this run's cluster id owns may be left in
  # the cloud, whatever shapes the suite's Gateways took. (The next provider's run also applies
  # the same base manifests, so they must go first anyway.)
  log "$p: deleting the conformance namespaces"
  if "$KUBECTL" delete namespace gateway-conformance-infra gateway-conformance-app-backend \
    gateway-conformance-web-backend --ignore-not-found --wait --timeout=180s >/dev/null; then
    check_leaks "$p"
  else
    log "$p: namespaces not deleted in time (see $OUT/controller-$p.log)"; TOTAL_F=$((TOTAL_F + 1))
  fi
  stop_controller
}

# Everything the provider's controller made during the run is gone once its Gateways are.
check_leaks() {
  local py=python3 left
  [[ $1 == aws-* ]] && py="${CLOUDGATE_AWS_VENV:?}/bin/python"
  if ! left=$("$py" "$HERE/leaks.py" "$1" "conformance-$1" 2>&1); then
    log "$1: cannot list the cloud's resources: $left"; TOTAL_F=$((TOTAL_F + 1)); return
  fi
  if [[ -n $left ]]; then
    log "$1: cloud resources left after every Gateway was deleted:"; printf '  %s\n' $left >&2
    TOTAL_F=$((TOTAL_F + 1))
  else
    log "$1: no cloud resources left after every Gateway was deleted"
  fi
}

# One run of the suite binary. The full log (thousands of polling lines) goes to $1; stdout
# gets each test's verdict, the assertion messages of failures, and the harness's summary.
suite_pass() {
  local log=$1; shift
  log "full log: $log"
  # shellcheck disable=SC2086 # extra flags
  (cd "$HERE" && "$SUITE_BIN" -test.v -test.timeout 30m "$@" ${CLOUDGATE_CONFORMANCE_ARGS:-}) \
    2>&1 | tee "$log" | awk '
      /^(conformance report|status halves)/ { summary = 1 }
      summary || /^    --- (PASS|FAIL)|^--- FAIL|^[ \t]+(Error|Test|Messages):|^[ \t]+conformance_test\.go:/ { print }
      /^[0-9]+ passed, / { summary = 0 }'
  PASS_RC=${PIPESTATUS[0]}
}

# Adds a pass's counts to the totals. The harness's last line is its verdict (it knows which
# failures are the provider's known ones, which make go test exit non-zero); no line means it
# broke before the end.
tally() { # label log
  local line np nf ns nx
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped, [0-9]+ xfailed in ' "$2" | tail -1)
  if [[ -z $line ]]; then
    log "$1: the suite printed no result (exit $PASS_RC); see $2 and $OUT/controller-${1%% *}.log"
    TOTAL_F=$((TOTAL_F + 1)); return 1
  fi
  read -r np _ nf _ ns _ nx _ <<<"${line//,/}"
  TOTAL_P=$((TOTAL_P + np)) TOTAL_F=$((TOTAL_F + nf)) TOTAL_S=$((TOTAL_S + ns)) TOTAL_X=$((TOTAL_X + nx))
  log "$1: $np passed, $nf failed, $ns skipped, $nx known failures"
}

START=$SECONDS
build_suite
for p in $PROVIDERS; do run_provider "$p"; done
echo "$TOTAL_P passed, $TOTAL_F failed, $TOTAL_S skipped, $TOTAL_X xfailed in $((SECONDS - START)).0s"
[[ $TOTAL_F -eq 0 ]]
