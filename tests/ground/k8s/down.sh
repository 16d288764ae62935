#!/usr/bin/env bash
# down.sh STATE_DIR — stops what up.sh started (SIGTERM to each process group, SIGKILL after a
# grace period). Idempotent; never fails when things are already stopped. Keeps logs and state.
set -uo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[[ -d "$1" ]] || { echo "[k8s/down] $1 does not exist; nothing to stop" >&2; exit 0; }
STATE="$(cd "$1" && pwd)"
PIDS="$STATE/pids"
GRACE="${CLOUDGATE_TEST_K8S_STOP_GRACE:-10}"
# reverse start order: clients first, etcd last
COMPONENTS=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

ours() { # ours PID — alive and started for this STATE_DIR (guards against pid reuse)
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$STATE"
}
group_alive() { # any live (non-zombie) process left in process group $1 (up.sh uses setsid)
  local p st
  for p in $(pgrep -g "$1" 2>/dev/null); do
    st="$(ps -o stat= -p "$p" 2>/dev/null)"
    [[ -n "$st" && "$st" != Z* ]] && return 0
  done
  return 1
}

for c in "${COMPONENTS[@]}"; do
  f="$PIDS/$c.pid"
  [[ -f "$f" ]] || continue
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ ! "$pid" =~ ^[0-9]+$ ]]; then rm -f "$f"; continue; fi
  if ours "$pid"; then
    echo "[k8s/down] stopping $c (pid $pid)" >&2
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')"
    if [[ "$pgid" == "$pid" ]]; then kill -TERM -- "-$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
    deadline=$((SECONDS + GRACE))
    while (ours "$pid" || { [[ "$pgid" == "$pid" ]] && group_alive "$pid"; }) && (( SECONDS < deadline )); do
      sleep 0.1
    done
    if ours "$pid" || { [[ "$pgid" == "$pid" ]] && group_alive "$pid"; }; then
      echo "[k8s/down] $c did not stop within ${GRACE}s; SIGKILL" >&2
      if [[ "$pgid" == "$pid" ]]; then kill -KILL -- "-$pid" 2>/dev/null; fi
      kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$f"
done
exit 0
