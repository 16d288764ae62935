#!/usr/bin/env bash
# Builds (once, under a lock) and prints the path of the tests/install venv:
#   ${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}/venv-install-<sha256 of requirements.txt>
# CLOUDGATE_PYTHON picks the interpreter (default python3, >= 3.10). Progress goes to stderr,
# only the venv path to stdout:   VENV=$(tests/install/venv.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}
REQ=$HERE/requirements.txt
SHA=$(sha256sum "$REQ" | cut -c1-16)
VENV=$CACHE/venv-install-$SHA
PYTHON=${CLOUDGATE_PYTHON:-python3}
mkdir -p "$CACHE"
exec 9>"$CACHE/.venv-install.lock"
flock 9
if [[ ! -f "$VENV/.complete" ]]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    { echo "install-tests: need Python >= 3.10 (set CLOUDGATE_PYTHON)" >&2; exit 1; }
  echo "install-tests: building venv $VENV" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ" >&2
  "$VENV/bin/python" -m pip check >&2
  "$VENV/bin/hadolint" --version >&2
  touch "$VENV/.complete"
fi
flock -u 9
echo "$VENV"
