#!/usr/bin/env bash
# up.sh STATE_DIR — starts a real, kubelet-less Kubernetes control plane on 127.0.0.1:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake Nodes, Pods go Ready
#   with pod IPs), then installs the Gateway API CRDs (standard, then experimental) and waits.
# Writes STATE_DIR/k8s.env (KUBECONFIG=..., CLOUDGATE_TEST_K8S_VERSION=..., ...), STATE_DIR/kubeconfig,
# logs in STATE_DIR/logs/<name>.log, pids in STATE_DIR/pids/<name>.pid, everything else in STATE_DIR/k8s/.
# Stop with down.sh STATE_DIR.
#
# Env knobs:
#   CLOUDGATE_CACHE                 cache root for build.sh (default ~/.cache/cloudgate)
#   CLOUDGATE_TEST_K8S_NODES        number of kwok Nodes (default 2; zones us-east-1a, -1b, -1c, ...)
#   CLOUDGATE_TEST_K8S_TIMEOUT      seconds allowed for each wait phase (default 120)
#   CLOUDGATE_TEST_K8S_KEEP_ON_FAILURE=1  leave processes running when up.sh fails (for debugging)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[k8s/up] %s\n' "$*" >&2; }

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
mkdir -p "$1"
STATE="$(cd "$1" && pwd)"
[[ "$STATE" != *[[:space:]]* ]] || { echo "STATE_DIR must not contain whitespace: $STATE" >&2; exit 2; }

NODES="${CLOUDGATE_TEST_K8S_NODES:-2}"
TIMEOUT="${CLOUDGATE_TEST_K8S_TIMEOUT:-120}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
LOGS="$STATE/logs" PIDS="$STATE/pids" K="$STATE/k8s"
PKI="$K/pki"
KUBECONFIG_PATH="$STATE/kubeconfig"
t0=$SECONDS

# ---------------------------------------------------------------- refuse to double-start
for c in "${COMPONENTS[@]}"; do
  if [[ -f "$PIDS/$c.pid" ]]; then
    pid="$(cat "$PIDS/$c.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE"; then
      echo "[k8s/up] ERROR: $c is already running (pid $pid) for $STATE; run down.sh $STATE first" >&2
      exit 1
    fi
  fi
done

# ---------------------------------------------------------------- build (or reuse cache)
ROOT="$("$here/build.sh" | tail -n1)"
BIN="$ROOT/bin"
# shellcheck disable=SC1091
source "$ROOT/versions.env"
KUBECTL="$BIN/kubectl"
log "binaries: $BIN (k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, gateway-api $GATEWAY_API_VERSION)"

# ---------------------------------------------------------------- failure handling
started=()
dump_logs() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ -f "$LOGS/$c.log" ]] || continue
    printf '\n----- tail of %s -----\n' "$LOGS/$c.log" >&2
    tail -n 25 "$LOGS/$c.log" >&2 || true
  done
}
fail() {
  FAILING=1
  printf '[k8s/up] ERROR: %s\n' "$*" >&2
  dump_logs
  if [[ "${CLOUDGATE_TEST_K8S_KEEP_ON_FAILURE:-0}" == 1 ]]; then
    log "leaving processes running (CLOUDGATE_TEST_K8S_KEEP_ON_FAILURE=1); stop with $here/down.sh $STATE"
  else
    "$here/down.sh" "$STATE" >&2 || true
  fi
  exit 1
}
trap 'rc=$?; if [[ $rc -ne 0 && -z "${UP_DONE:-}" && -z "${FAILING:-}" ]]; then FAILING=1; fail "up.sh exited with status $rc (line $LINENO)"; fi' EXIT

# ---------------------------------------------------------------- fresh state
# (STATE_DIR, logs/ and pids/ may be shared with other ground components: remove only our files)
rm -rf "$K" "$KUBECONFIG_PATH" "$STATE/k8s.env"
for c in "${COMPONENTS[@]}"; do rm -f "$PIDS/$c.pid" "$LOGS/$c.log"; done
mkdir -p "$K/etcd" "$PKI" "$LOGS" "$PIDS"
chmod 700 "$K/etcd"

# ---------------------------------------------------------------- free loopback ports
pick_ports() { # pick_ports N -> N distinct free TCP ports on 127.0.0.1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  else
    local out=() p
    while [[ ${#out[@]} -lt $1 ]]; do
      p=$((20000 + RANDOM % 30000))
      [[ " ${out[*]} " == *" $p "* ]] && continue
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
      out+=("$p")
    done
    echo "${out[*]}"
  fi
}
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT <<<"$(pick_ports 6)"
log "ports: etcd=$ETCD_PORT etcd-peer=$ETCD_PEER_PORT apiserver=$API_PORT controller-manager=$KCM_PORT scheduler=$SCHED_PORT kwok=$KWOK_PORT"

# ---------------------------------------------------------------- PKI (openssl, EC P-256)
genkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
( cd "$PKI"
  genkey ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=cloudgate-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out ca.crt 2>/dev/null
  sign() { # sign NAME SUBJECT EXTFILE-CONTENT
    genkey "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
      -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=cloudgate-test-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # aggregation layer client (silences the extension-apiserver-authentication requestheader errors)
  sign front-proxy-client "/CN=front-proxy-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # components' own serving certs (127.0.0.1) so they do not self-sign into /tmp
  sign serving "/CN=127.0.0.1" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  genkey sa.key
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  chmod 600 ./*.key
) || fail "openssl failed to generate the PKI in $PKI"
log "PKI generated in $PKI"

b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cloudgate-test
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: cloudgate-test-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: cloudgate-test
  context:
    cluster: cloudgate-test
    user: cloudgate-test-admin
current-context: cloudgate-test
EOF
chmod 600 "$KUBECONFIG_PATH"
export KUBECONFIG="$KUBECONFIG_PATH"

# ---------------------------------------------------------------- process helpers
start() { # start NAME BINARY ARGS... ; own session (process group) so down.sh can kill the group
  local name="$1"; shift
  log "starting $name"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name.pid" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  local i
  for i in $(seq 50); do [[ -s "$PIDS/$name.pid" ]] && break; sleep 0.05; done
  [[ -s "$PIDS/$name.pid" ]] || fail "$name did not start"
  started+=("$name")
}
check_alive() {
  local c pid
  for c in "${started[@]}"; do
    pid="$(cat "$PIDS/$c.pid")"
    kill -0 "$pid" 2>/dev/null || fail "$c (pid $pid) exited; see $LOGS/$c.log"
  done
}
wait_for() { # wait_for DESCRIPTION COMMAND... ; polls until COMMAND succeeds, bounded by $TIMEOUT
  local desc="$1"; shift
  local deadline=$((SECONDS + TIMEOUT)) ts=$SECONDS
  until "$@" >/dev/null 2>&1; do
    check_alive
    (( SECONDS < deadline )) || fail "timed out after ${TIMEOUT}s waiting for $desc"
    sleep 0.25
  done
  log "ready: $desc ($((SECONDS - ts))s)"
}
https_ok() { # https_ok URL — body must be "ok"
  [[ "$(curl -sf --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$1")" == ok ]]
}

# ---------------------------------------------------------------- etcd
start etcd "$BIN/etcd" \
  --name=cloudgate-test \
  --data-dir="$K/etcd" \
  --listen-client-urls="http://127.0.0.1:${ETCD_PORT}" \
  --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="cloudgate-test=http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster-state=new \
  --unsafe-no-fsync \
  --log-level=warn
etcd_ok() { curl -sf --max-time 3 "http://127.0.0.1:${ETCD_PORT}/health" | grep -q '"health":"true"'; }
wait_for "etcd /health" etcd_ok

# ---------------------------------------------------------------- kube-apiserver
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="${API_PORT}" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --requestheader-client-ca-file="$PKI/ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=RBAC \
  --enable-priority-and-fairness=false \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --profiling=false \
  --v=1
wait_for "kube-apiserver /readyz" https_ok "https://127.0.0.1:${API_PORT}/readyz"

# ---------------------------------------------------------------- controller-manager, scheduler
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KUBECONFIG_PATH" \
  --authentication-kubeconfig="$KUBECONFIG_PATH" \
  --authorization-kubeconfig="$KUBECONFIG_PATH" \
  --bind-address=127.0.0.1 \
  --secure-port="${KCM_PORT}" \
  --tls-cert-file="$PKI/serving.crt" \
  --tls-private-key-file="$PKI/serving.key" \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=false \
  --service-cluster-ip-range=10.96.0.0/16 \
  --allocate-node-cidrs=false \
  --controllers='*' \
  --leader-elect=false \
  --profiling=false \
  --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$KUBECONFIG_PATH" \
  --authentication-kubeconfig="$KUBECONFIG_PATH" \
  --authorization-kubeconfig="$KUBECONFIG_PATH" \
  --bind-address=127.0.0.1 \
  --secure-port="${SCHED_PORT}" \
  --tls-cert-file="$PKI/serving.crt" \
  --tls-private-key-file="$PKI/serving.key" \
  --leader-elect=false \
  --profiling=false \
  --v=1

# ---------------------------------------------------------------- kwok
# Manages only Nodes annotated kwok.x-k8s.io/node=fake; default (built-in) node and pod stages:
# nodes go Ready and heartbeat with Leases, pods get an IP from --cidr and go Ready.
# The Nodes get no spec.podCIDR on purpose: kwok hands out IPs from the start of a node's podCIDR,
# and the API server only accepts canonical CIDRs, so the first pod would get the network address
# (10.244.1.0). --cidr=10.244.0.1/16 makes the shared pool start at 10.244.0.1.
start kwok "$BIN/kwok" \
  --kubeconfig="$KUBECONFIG_PATH" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.1/16 \
  --node-ip=10.250.0.1 \
  --server-address="127.0.0.1:${KWOK_PORT}" \
  --node-lease-duration-seconds=40

wait_for "kube-controller-manager /healthz" https_ok "https://127.0.0.1:${KCM_PORT}/healthz"
wait_for "kube-scheduler /healthz" https_ok "https://127.0.0.1:${SCHED_PORT}/healthz"
kwok_ok() { [[ "$(curl -sf --max-time 3 "http://127.0.0.1:${KWOK_PORT}/healthz")" == ok ]]; }
wait_for "kwok /healthz" kwok_ok

# ---------------------------------------------------------------- fake nodes
zones=(us-east-1a us-east-1b us-east-1c us-east-1d us-east-1e us-east-1f)
node_names=()
nodes_yaml=""
for i in $(seq 1 "$NODES"); do
  zone="${zones[$(( (i - 1) % ${#zones[@]} ))]}"
  name="kwok-node-$i"
  node_names+=("$name")
  nodes_yaml+="---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
    node.kubernetes.io/instance-type: kwok.large
    topology.kubernetes.io/region: us-east-1
    topology.kubernetes.io/zone: $zone
status:
  addresses:
  - type: InternalIP
    address: 10.250.0.$((10 + i))
  - type: Hostname
    address: $name
  allocatable: {cpu: \"32\", memory: 128Gi, pods: \"110\"}
  capacity: {cpu: \"32\", memory: 128Gi, pods: \"110\"}
"
done
printf '%s' "$nodes_yaml" >"$K/nodes.yaml"
"$KUBECTL" create -f "$K/nodes.yaml" >&2 || fail "could not create the kwok Nodes"
nodes_ready() { "$KUBECTL" wait --for=condition=Ready --timeout=5s "${node_names[@]/#/node/}"; }
wait_for "nodes Ready: ${node_names[*]}" nodes_ready
sa_ok() { "$KUBECTL" -n default get serviceaccount default; }
wait_for "default ServiceAccount (controller-manager working)" sa_ok

# ---------------------------------------------------------------- Gateway API CRDs
crd_files() { # CRD manifests only (skip kustomization.yaml and the safe-upgrades ValidatingAdmissionPolicy)
  local f
  for f in "$ROOT/gateway-api/$1"/*.yaml; do
    grep -q '^kind: CustomResourceDefinition' "$f" && printf '%s\n' "$f"
  done
}
for channel in standard experimental; do
  mapfile -t files < <(crd_files "$channel")
  [[ ${#files[@]} -gt 0 ]] || fail "no CRD files in $ROOT/gateway-api/$channel"
  log "applying ${#files[@]} Gateway API $GATEWAY_API_VERSION $channel CRDs"
  args=(); for f in "${files[@]}"; do args+=(-f "$f"); done
  "$KUBECTL" apply --server-side --force-conflicts --field-manager=cloudgate-test-ground "${args[@]}" >&2 \
    || fail "kubectl apply of the $channel Gateway API CRDs failed"
  crds_established() { "$KUBECTL" wait --for=condition=Established --timeout=5s "${args[@]}"; }
  wait_for "$channel CRDs Established" crds_established
done

# ---------------------------------------------------------------- env file
cat >"$STATE/k8s.env" <<EOF
KUBECONFIG=$KUBECONFIG_PATH
CLOUDGATE_TEST_K8S_VERSION=$K8S_VERSION
CLOUDGATE_TEST_K8S_SERVER=https://127.0.0.1:$API_PORT
CLOUDGATE_TEST_K8S_CA=$PKI/ca.crt
CLOUDGATE_TEST_K8S_KUBECTL=$KUBECTL
CLOUDGATE_TEST_K8S_BIN_DIR=$BIN
CLOUDGATE_TEST_K8S_NODES=$(IFS=,; echo "${node_names[*]}")
CLOUDGATE_TEST_GATEWAY_API_VERSION=$GATEWAY_API_VERSION
EOF
UP_DONE=1
log "up in $((SECONDS - t0))s; env: $STATE/k8s.env"
cat "$STATE/k8s.env" >&2
