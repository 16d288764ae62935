#!/usr/bin/env bash
# Starts the AWS part of the cloudgate test ground and writes STATE_DIR/aws.env.
#
#   tests/ground/aws/up.sh STATE_DIR
#
# - venv: ${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}/venv-aws-<sha of requirements.txt>, built once
#   (under a lock) and reused; CLOUDGATE_PYTHON picks the interpreter (default python3, >= 3.10).
# - server: moto + cloudgate's VPC Lattice extension + call log, on a free 127.0.0.1 port
#   (GROUND_AWS_PORT to force one); log STATE_DIR/logs/moto.log, pid STATE_DIR/pids/moto.pid,
#   call log STATE_DIR/logs/aws-calls.jsonl (override with GROUND_CALL_LOG).
# - If AWS_ENDPOINT_URL is already set (LocalStack, ...), no server is started: aws.env points
#   there instead.
# Idempotent: a healthy server from an earlier run with the same STATE_DIR is reused.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1/logs" "$1/pids"
STATE_DIR=$(cd "$1" && pwd)
LOG="$STATE_DIR/logs/moto.log"
PID_FILE="$STATE_DIR/pids/moto.pid"
ENV_FILE="$STATE_DIR/aws.env"
START_TIMEOUT=${GROUND_AWS_START_TIMEOUT:-60}

log() { echo "[ground/aws] $*" >&2; }

# ---------------------------------------------------------------------------------- venv
REQ="$HERE/requirements.txt"
REQ_SHA=$(sha256sum "$REQ" | cut -c1-16)
CACHE=${CLOUDGATE_CACHE:-$HOME/.cache/cloudgate}
VENV="$CACHE/venv-aws-$REQ_SHA"
PYTHON=${CLOUDGATE_PYTHON:-python3}
mkdir -p "$CACHE"

ensure_venv() {
  # One builder at a time; the marker file is written last, so a half-built venv is rebuilt.
  exec 9>"$CACHE/.venv-aws.lock"
  flock 9
  if [[ ! -f "$VENV/.cloudgate-complete" ]]; then
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || {
      log "need Python >= 3.10 (set CLOUDGATE_PYTHON)"; exit 1; }
    log "building venv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
    cp "$REQ" "$VENV/.cloudgate-complete"
  fi
  flock -u 9
  exec 9>&-
}
ensure_venv

write_env() { # endpoint mode
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "AWS_ENDPOINT_URL=$1"
    echo "AWS_ACCESS_KEY_ID=$3"
    echo "AWS_SECRET_ACCESS_KEY=$4"
    echo "AWS_REGION=$5"
    echo "AWS_DEFAULT_REGION=$5"
    echo "AWS_EC2_METADATA_DISABLED=true"
    echo "CLOUDGATE_AWS_VENV=$VENV"
    echo "GROUND_AWS_MODE=$2"
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# ------------------------------------------------------------------ external endpoint
own_url() { # url of this STATE_DIR's live server, if any
  local p
  p=$(cat "$PID_FILE" 2>/dev/null || true)
  if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
    grep -m1 -o 'cloudgate-moto ready http://[0-9.:]*' "$LOG" 2>/dev/null | awk '{print $3}' || true
  fi
}
# A shell that sourced our own aws.env has AWS_ENDPOINT_URL set to our server: that is not external.
if [[ -n "${AWS_ENDPOINT_URL:-}" && "${AWS_ENDPOINT_URL%/}" != "$(own_url)" ]]; then
  log "AWS_ENDPOINT_URL is set ($AWS_ENDPOINT_URL): not starting moto"
  region=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
  write_env "$AWS_ENDPOINT_URL" external "${AWS_ACCESS_KEY_ID:-testing}" "${AWS_SECRET_ACCESS_KEY:-testing}" "$region"
  log "wrote $ENV_FILE"
  exit 0
fi

# ------------------------------------------------------------------------------- moto
health() { # url -> 0 when the ground answers
  "$VENV/bin/python" - "$1" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/_ground/health", timeout=2) as r:
        sys.exit(0 if json.load(r).get("lattice_ext") else 1)
except Exception:
    sys.exit(1)
PY
}

ours() { # pid -> 0 when it is a live cloudgate-moto server
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'cloudgate_moto.server'
}

ready_url() { grep -m1 -o 'cloudgate-moto ready http://[0-9.:]*' "$LOG" 2>/dev/null | awk '{print $3}' || true; }

if [[ -f "$PID_FILE" ]]; then
  old_pid=$(cat "$PID_FILE")
  url=$(ready_url)
  if ours "$old_pid" && [[ -n "$url" ]] && health "$url"; then
    log "reusing running server pid $old_pid at $url"
    write_env "$url" moto testing testing us-east-1
    exit 0
  fi
  if ours "$old_pid"; then
    log "stale server pid $old_pid: stopping it"
    "$HERE/down.sh" "$STATE_DIR"
  fi
  rm -f "$PID_FILE"
fi

: >"$LOG"
export GROUND_CALL_LOG=${GROUND_CALL_LOG:-$STATE_DIR/logs/aws-calls.jsonl}
# setsid: the server outlives this script and its shell; down.sh stops it by pid.
(
  cd "$HERE"
  PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec setsid "$VENV/bin/python" -m cloudgate_moto.server \
    --host 127.0.0.1 --port "${GROUND_AWS_PORT:-0}" >>"$LOG" 2>&1 </dev/null
) &
pid=$!
echo "$pid" >"$PID_FILE"

deadline=$((SECONDS + START_TIMEOUT))
url=""
while ((SECONDS < deadline)); do
  if ! kill -0 "$pid" 2>/dev/null; then
    log "server exited during start; last log lines:"
    tail -n 30 "$LOG" >&2 || true
    rm -f "$PID_FILE"
    exit 1
  fi
  url=$(ready_url)
  if [[ -n "$url" ]] && health "$url"; then
    break
  fi
  url=""
  sleep 0.2
done
if [[ -z "$url" ]]; then
  log "server did not become ready within ${START_TIMEOUT}s; see $LOG"
  "$HERE/down.sh" "$STATE_DIR" || true
  exit 1
fi

write_env "$url" moto testing testing us-east-1
log "moto + lattice extension ready at $url (pid $pid); wrote $ENV_FILE"
