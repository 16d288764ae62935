#!/usr/bin/env bash
# Stops the AWS test-ground server started by up.sh. Idempotent; leaves logs and aws.env alone.
#
#   tests/ground/aws/down.sh STATE_DIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
STATE_DIR=$1
PID_FILE="$STATE_DIR/pids/moto.pid"

[[ -f "$PID_FILE" ]] || exit 0
pid=$(cat "$PID_FILE")

# Only signal the process if it still is our server (pids get reused).
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
  && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'cloudgate_moto.server'; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "[ground/aws] pid $pid ignored SIGTERM for 10s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$PID_FILE"
