#!/usr/bin/env bash
# Stops the fault proxy started by up.sh. Idempotent.
#   tests/ground/faults/down.sh STATE_DIR
set -euo pipefail

STATE_DIR=${1:?usage: down.sh STATE_DIR}
PIDFILE=$STATE_DIR/pids/faults.pid
[ -f "$PIDFILE" ] || { rm -f "$STATE_DIR/faults.env" "$STATE_DIR/faults.ports"; exit 0; }
PID=$(cat "$PIDFILE")

# Only signal the process if it still is our proxy (pids get reused).
ours() { kill -0 "$PID" 2>/dev/null && tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q "faultproxy"; }

if ours; then
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    ours || break
    sleep 0.1
  done
  ours && kill -KILL "$PID" 2>/dev/null || true
fi
rm -f "$PIDFILE" "$STATE_DIR/faults.env" "$STATE_DIR/faults.ports"
