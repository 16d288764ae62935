#!/usr/bin/env bash
# Starts the fault-injecting proxy in front of the ground's AWS and GCE backends and writes
# STATE_DIR/faults.env. Run after tests/ground/aws/up.sh and tests/ground/gce/up.sh.
#
#   tests/ground/faults/up.sh STATE_DIR
#
# Reads the upstreams from STATE_DIR/aws.env (AWS_ENDPOINT_URL) and STATE_DIR/gce.env
# (GCE_ENDPOINT); either may be missing. Writes:
#   FAULTS_AWS_ENDPOINT_URL  the AWS endpoint through the proxy
#   FAULTS_GCE_ENDPOINT      the GCE endpoint through the proxy
#   FAULTS_CONTROL_URL       where /_faults/config, /_faults/stats, /_faults/reset are served
# Faults start switched off (all rates 0): only a test that asks for them gets them, and only
# clients pointed at the proxy see them. Stdlib only: runs on CLOUDGATE_PYTHON (default python3).
# Log STATE_DIR/logs/faults.log, pid STATE_DIR/pids/faults.pid. Idempotent.
set -euo pipefail

STATE_DIR=${1:?usage: up.sh STATE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
LOG=$STATE_DIR/logs/faults.log
PIDFILE=$STATE_DIR/pids/faults.pid
PORTFILE=$STATE_DIR/faults.ports
ENVFILE=$STATE_DIR/faults.env
PYTHON=${CLOUDGATE_PYTHON:-python3}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "faultproxy"; }

if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")" && [ -f "$ENVFILE" ]; then
  echo "faults: already running (pid $(cat "$PIDFILE"))" >&2
  exit 0
fi
rm -f "$PIDFILE" "$PORTFILE" "$ENVFILE"

upstreams=()
aws=$( [ -f "$STATE_DIR/aws.env" ] && sed -n 's/^AWS_ENDPOINT_URL=//p' "$STATE_DIR/aws.env" || true)
gce=$( [ -f "$STATE_DIR/gce.env" ] && sed -n 's/^GCE_ENDPOINT=//p' "$STATE_DIR/gce.env" || true)
[ -n "$aws" ] && upstreams+=(--upstream "aws=${aws%/}")
[ -n "$gce" ] && upstreams+=(--upstream "gce=${gce%/}")
if [ ${#upstreams[@]} -eq 0 ]; then
  echo "faults: neither $STATE_DIR/aws.env nor $STATE_DIR/gce.env: start the backends first" >&2
  exit 1
fi

PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" nohup setsid "$PYTHON" -m faultproxy "${upstreams[@]}" \
  --port-file "$PORTFILE" >>"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

deadline=$((SECONDS + 30))
until [ -f "$PORTFILE" ]; do
  if ! kill -0 "$PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "faults: proxy did not start; last log lines:" >&2
    tail -n 30 "$LOG" >&2
    kill "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
  fi
  sleep 0.1
done

port() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ready"].get(sys.argv[2], ""))' "$PORTFILE" "$1"; }
aws_port=$(port aws)
gce_port=$(port gce)
{
  [ -n "$aws_port" ] && echo "FAULTS_AWS_ENDPOINT_URL=http://127.0.0.1:$aws_port"
  [ -n "$gce_port" ] && echo "FAULTS_GCE_ENDPOINT=http://127.0.0.1:$gce_port"
  echo "FAULTS_CONTROL_URL=http://127.0.0.1:${aws_port:-$gce_port}"
} >"$ENVFILE.tmp"
mv "$ENVFILE.tmp" "$ENVFILE"
echo "faults: proxy ready (pid $PID): $(tr '\n' ' ' <"$ENVFILE")" >&2
