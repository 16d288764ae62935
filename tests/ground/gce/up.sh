#!/usr/bin/env bash
# Start the GCE fake for the local test ground.
#   up.sh STATE_DIR
# Writes STATE_DIR/gce.env (GCE_ENDPOINT, GCE_PROJECT, GCE_REGION, CLOUDGATE_GCE_VENV),
# logs to STATE_DIR/logs/gce.log, pid in STATE_DIR/pids/gce.pid. Reuses a running instance.
set -euo pipefail

STATE_DIR=${1:?usage: up.sh STATE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}
PYTHON=${PYTHON:-python3}
READY_TIMEOUT=${GCE_READY_TIMEOUT:-60}

mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids" "$CACHE"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
LOG=$STATE_DIR/logs/gce.log
CALL_LOG=${GCE_CALL_LOG:-$STATE_DIR/logs/gce-calls.jsonl}
PIDFILE=$STATE_DIR/pids/gce.pid
PORTFILE=$STATE_DIR/gce.port
ENVFILE=$STATE_DIR/gce.env

REQ_SHA=$(sha256sum "$HERE/requirements.txt" | cut -c1-16)
VENV=$CACHE/venv-gce-$REQ_SHA

# --- venv, keyed by the requirements' hash; built once, under a lock --------
(
  flock 9
  if [ ! -f "$VENV/.complete" ]; then
    echo "gce: creating $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
    "$VENV/bin/python" - <<'PY'
from importlib import resources
doc = resources.files("googleapiclient").joinpath("discovery_cache/documents/compute.v1.json")
assert doc.is_file(), "compute.v1.json missing from google-api-python-client"
PY
    touch "$VENV/.complete"
  fi
) 9>"$CACHE/venv-gce.lock"

probe() { # probe PORT -> 0 when the fake answers
  "$VENV/bin/python" - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_ground/info", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

alive() { # alive PID -> 0 when PID is our fake
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "gce_fake"
}

write_env() {
  cat >"$ENVFILE.tmp" <<ENV
GCE_ENDPOINT=http://127.0.0.1:$1
GCE_PROJECT=${GCE_PROJECT:-cloudgate-test}
GCE_REGION=${GCE_REGION:-us-central1}
CLOUDGATE_GCE_VENV=$VENV
GCE_CALL_LOG=$CALL_LOG
ENV
  mv "$ENVFILE.tmp" "$ENVFILE"
}

# --- reuse a running instance ------------------------------------------------
if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")" && [ -f "$PORTFILE" ] && probe "$(cat "$PORTFILE")"; then
  write_env "$(cat "$PORTFILE")"
  echo "gce: already running (pid $(cat "$PIDFILE"), port $(cat "$PORTFILE"))" >&2
  exit 0
fi
rm -f "$PIDFILE" "$PORTFILE" "$ENVFILE"

# --- start ---------------------------------------------------------------------
# Port 0 + --port-file: the kernel picks a free loopback port, no race.
# Every call is also appended to a JSON-lines log (method, status) that outlives the fake's
# in-memory list (tests reset that): tests/install/iam_coverage.py reads it.
GROUND_CALL_LOG="$CALL_LOG" PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" nohup "$VENV/bin/python" -m gce_fake \
  --host 127.0.0.1 --port "${GCE_PORT:-0}" --port-file "$PORTFILE" >>"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

deadline=$((SECONDS + READY_TIMEOUT))
until [ -f "$PORTFILE" ] && probe "$(cat "$PORTFILE")"; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "gce: fake exited during start; last log lines:" >&2
    tail -n 30 "$LOG" >&2
    rm -f "$PIDFILE"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "gce: fake not answering after ${READY_TIMEOUT}s; stopping it" >&2
    kill "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  sleep 0.2
done

write_env "$(cat "$PORTFILE")"
echo "gce: ready at http://127.0.0.1:$(cat "$PORTFILE") (pid $PID), env in $ENVFILE" >&2
