#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by cloudgate's tests from Go modules:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (this module: go.mod/tools.go)
#   kwok (go install sigs.k8s.io/kwok/cmd/kwok@KWOK_VERSION, its own dependency graph)
# and records the Gateway API CRD manifests from the sigs.k8s.io/gateway-api module.
#
# Output: ${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}/k8s/<key>/{bin,gateway-api,versions.env}
# <key> names every version plus a hash of go.mod/go.sum/build flags, so a change rebuilds.
# Skips everything when the key directory is complete.
#
# Progress goes to stderr; the key directory is printed on stdout (last line), so callers
# can do: root="$(tests/ground/k8s/build.sh)".
set -euo pipefail

# ---- pinned versions (k8s and etcd must match go.mod; checked below) ----
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8          # go.etcd.io/etcd/server/v3, same as k8s.io/kubernetes v1.36.3 pins
KWOK_VERSION=v0.7.0          # sigs.k8s.io/kwok
GATEWAY_API_VERSION=v1.5.1   # sigs.k8s.io/gateway-api

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[k8s/build] %s\n' "$*" >&2; }
die() { printf '[k8s/build] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; else die "go not found in PATH"; fi
fi
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export GOWORK=off GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0
unset GOFLAGS
GO_PARALLEL="${CLOUDGATE_GO_PARALLEL:-2}"

grep -qE "^\s*(require )?k8s.io/kubernetes ${K8S_VERSION}\b" "$here/go.mod" \
  || die "go.mod does not require k8s.io/kubernetes ${K8S_VERSION}"
grep -qE "^\s*(require )?go.etcd.io/etcd/server/v3 ${ETCD_VERSION}\b" "$here/go.mod" \
  || die "go.mod does not require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"

k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
vpkg_ldflags() { # version stamping as the Kubernetes release build does it
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=1970-01-01T00:00:00Z' \
      "$p" "$K8S_VERSION" "$p" "$p" "$k8s_minor" "$p" "$p"
  done
}
K8S_LDFLAGS="-s -w$(vpkg_ldflags)"
KWOK_LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"

go_version="$(go env GOVERSION)"
goarch="$(go env GOOS)-$(go env GOARCH)"
hash="$( { cat "$here/go.mod" "$here/go.sum" "$here/tools.go"
           echo "$K8S_LDFLAGS|$KWOK_LDFLAGS|$go_version|$goarch"; } | sha256sum | cut -c1-12)"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_gwapi-${GATEWAY_API_VERSION}_${goarch}_${hash}"
cache_root="${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}/k8s"
dest="$cache_root/$key"
BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  local b
  for b in "${BINS[@]}"; do [[ -x "$dest/bin/$b" ]] || return 1; done
  [[ -f "$dest/versions.env" ]] && compgen -G "$dest/gateway-api/standard/*.yaml" >/dev/null \
    && compgen -G "$dest/gateway-api/experimental/*.yaml" >/dev/null
}

if complete; then
  log "cached: $dest (nothing to build)"
  echo "$dest"; exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
log "waiting for build lock $cache_root/.build.lock"
flock 9
if complete; then  # another process built it while we waited
  log "cached: $dest (built concurrently)"
  echo "$dest"; exit 0
fi

start=$SECONDS
tmp="$(mktemp -d "$cache_root/.tmp-$key.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
log "building into $dest ($go_version, $goarch, go -p $GO_PARALLEL)"

log "go build etcd ${ETCD_VERSION}"
(cd "$here" && go build -mod=readonly -buildvcs=false -p "$GO_PARALLEL" -trimpath -ldflags='-s -w' \
    -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3) >&2

log "go build kube-apiserver kube-controller-manager kube-scheduler kubectl ${K8S_VERSION} (slow the first time)"
(cd "$here" && go build -mod=readonly -buildvcs=false -p "$GO_PARALLEL" -trimpath -ldflags="$K8S_LDFLAGS" \
    -o "$tmp/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl) >&2

log "go install sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
(cd "$tmp" && GOBIN="$tmp/bin" go install -buildvcs=false -p "$GO_PARALLEL" -trimpath -ldflags="$KWOK_LDFLAGS" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}") >&2

log "go mod download sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}"
gw_json="$(cd "$tmp" && go mod download -json "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}")"
gw_dir="$(printf '%s\n' "$gw_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$gw_dir" && -d "$gw_dir/config/crd/standard" ]] || die "gateway-api module dir not found: $gw_json"
mkdir -p "$tmp/gateway-api"
cp -r "$gw_dir/config/crd/standard" "$gw_dir/config/crd/experimental" "$tmp/gateway-api/"
chmod -R u+w "$tmp/gateway-api"
log "gateway-api ${GATEWAY_API_VERSION} CRDs copied from $gw_dir"

cat >"$tmp/versions.env" <<EOF
K8S_VERSION=${K8S_VERSION}
ETCD_VERSION=${ETCD_VERSION}
KWOK_VERSION=${KWOK_VERSION}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION}
GATEWAY_API_MODULE_DIR=${gw_dir}
GO_VERSION=${go_version}
EOF

"$tmp/bin/kube-apiserver" --version >&2
"$tmp/bin/etcd" --version | head -1 >&2
"$tmp/bin/kwok" --version >&2 || true

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "done in $((SECONDS - start))s: $dest"
du -sh "$dest/bin" >&2
echo "$dest"
