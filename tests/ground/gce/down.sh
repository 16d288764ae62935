#!/usr/bin/env bash
# Stop the GCE fake started by up.sh. Idempotent.
#   down.sh STATE_DIR
set -euo pipefail

STATE_DIR=${1:?usage: down.sh STATE_DIR}
PIDFILE=$STATE_DIR/pids/gce.pid
[ -f "$PIDFILE" ] || { rm -f "$STATE_DIR/gce.env" "$STATE_DIR/gce.port"; exit 0; }
PID=$(cat "$PIDFILE")

ours() { kill -0 "$PID" 2>/dev/null && tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q "gce_fake"; }

if ours; then
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    ours || break
    sleep 0.2
  done
  if ours; then
    echo "gce: pid $PID ignored SIGTERM for 10s; sending SIGKILL" >&2
    kill -KILL "$PID" 2>/dev/null || true
  fi
fi
rm -f "$PIDFILE" "$STATE_DIR/gce.env" "$STATE_DIR/gce.port"
echo "gce: stopped" >&2
