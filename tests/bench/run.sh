#!/usr/bin/env bash
# Every benchmark, figures printed (nothing asserted); not part of tests/run (too slow).
#
#   tests/bench/run.sh               # plan benchmark (release) + the controller on the ground
#   tests/bench/run.sh --no-plan     # only the ground benchmarks
#   tests/bench/run.sh --only-plan   # only the plan benchmark
#
# The ground benchmarks start the local test ground (kube-apiserver, moto + Lattice extension,
# the Compute fake) on loopback, run controller/benches/ground.rs against it and stop it again,
# also on failure or Ctrl-C. They use the controller's debug build (the one tests/run builds, so
# nothing extra compiles; a release build of the AWS SDKs takes very long on small machines):
# cloud API call counts do not depend on the build, times and RSS are those of a debug binary.
#
# Environment: CLOUDGATE_BENCH (sections: rss,aws-alb,aws-lattice,gcp), BENCH_GATEWAYS (100),
# BENCH_ROUTES (10), BENCH_WEIGHT_CHANGES (30), BENCH_CONCURRENCY (4), BENCH_RSS_GATEWAYS (1000),
# BENCH_RSS_ROUTES (10 per Gateway), BENCH_RSS_SERVICES (5000, 10 endpoints each);
# CLOUDGATE_CACHE and CARGO_TARGET_DIR as for tests/run. Output is also written to
# $CLOUDGATE_CACHE/bench-<date>.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export CLOUDGATE_CACHE=${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CLOUDGATE_CACHE/cargo-target}
mkdir -p "$CLOUDGATE_CACHE"
PLAN=1
GROUND=1
for a in "$@"; do
  case "$a" in
    --no-plan) PLAN=0 ;;
    --only-plan) GROUND=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
OUT="$CLOUDGATE_CACHE/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"

if [[ $PLAN == 1 ]]; then
  cargo bench --locked -p cloudgate --bench plan 2>&1 | tee -a "$OUT"
fi

if [[ $GROUND == 1 ]]; then
  # Exactly tests/run's e2e feature set, so the dev build is shared with it.
  E2E_FEATURES=cloudgate-ground-checks/e2e,cloudgate-aws-alb/e2e,cloudgate-aws-lattice/e2e,cloudgate-gcp/e2e,cloudgate/e2e
  cargo bench --locked --workspace --profile dev --features "$E2E_FEATURES" --bench ground --no-run
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/cloudgate-bench.XXXXXX")
  STARTED=()
  stop() {
    local rc=$?
    trap - EXIT INT TERM
    for ((i=${#STARTED[@]}-1; i>=0; i--)); do "$ROOT/tests/ground/${STARTED[$i]}/down.sh" "$STATE" >/dev/null 2>&1 || true; done
    exit "$rc"
  }
  trap stop EXIT
  trap 'echo interrupted; exit 130' INT TERM
  for c in k8s aws gce; do
    STARTED+=("$c")
    "$ROOT/tests/ground/$c/up.sh" "$STATE" >"$STATE/up-$c.log" 2>&1 || { cat "$STATE/up-$c.log"; exit 1; }
  done
  set -a
  for c in k8s aws gce; do . "$STATE/$c.env"; done
  set +a
  cargo bench --locked --workspace --profile dev --features "$E2E_FEATURES" --bench ground 2>&1 | tee -a "$OUT"
fi
echo "figures also in $OUT"
