# shellcheck shell=bash
# Shared helpers for tests/install/*.sh (sourced, not run).
#
# Each check prints `ok - ...` or `not ok - ...`; `summary` prints one closing line in the form
# tests/run counts (`N passed, N failed in Ts`) and returns non-zero when anything failed.

INSTALL_T0=$(date +%s)
INSTALL_PASSED=0
INSTALL_FAILED=0

ok() { INSTALL_PASSED=$((INSTALL_PASSED + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { INSTALL_FAILED=$((INSTALL_FAILED + 1)); printf 'not ok - %s\n' "$*"; }

# check "description" command...   runs the command quietly; its output is shown only on failure.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    ok "$what"
  else
    not_ok "$what"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

summary() {
  local t=$(( $(date +%s) - INSTALL_T0 ))
  echo "${INSTALL_PASSED} passed, ${INSTALL_FAILED} failed in ${t}s"
  [[ $INSTALL_FAILED -eq 0 && $INSTALL_PASSED -gt 0 ]]
}

# The kubectl to use: the test ground's (same version as the API server) when it is known.
pick_kubectl() {
  if [[ -n "${CLOUDGATE_TEST_K8S_KUBECTL:-}" && -x "${CLOUDGATE_TEST_K8S_KUBECTL}" ]]; then
    echo "$CLOUDGATE_TEST_K8S_KUBECTL"
  elif command -v kubectl >/dev/null 2>&1; then
    command -v kubectl
  else
    echo "no kubectl: set CLOUDGATE_TEST_K8S_KUBECTL or put kubectl on PATH" >&2
    return 1
  fi
}

# Takes the kubeconfig from $1 (or $KUBECONFIG) and exports it; exits 2 when there is none.
use_kubeconfig() {
  local kc=${1:-${KUBECONFIG:-}}
  if [[ -z "$kc" || ! -r "$kc" ]]; then
    echo "usage: $0 KUBECONFIG   (a kubeconfig for the test API server, e.g. STATE/kubeconfig from tests/ground/k8s/up.sh)" >&2
    exit 2
  fi
  export KUBECONFIG=$kc
}
