#!/usr/bin/env bash
# Stop the dockerd started by .ci/docker_up.sh, and only that one (by its pidfile).
set -euo pipefail

root=${MCPGATE_DOCKER_ROOT:-/tmp/mcpgate-docker}
pidfile=${MCPGATE_DOCKERD_PIDFILE:-$root/dockerd.pid}

# dockerd leaves its netns bind mount (and, if killed, overlay mounts) behind under its roots.
unmount_leftovers() {
  awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

pid=$(cat "$pidfile" 2>/dev/null || true)
if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
  echo "docker_down: not running (pidfile $pidfile)" >&2
  unmount_leftovers
  exit 0
fi

# SIGTERM lets dockerd stop its containers and its managed containerd.
kill -TERM "$pid"
for _ in $(seq 30); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "docker_down: pid $pid ignored SIGTERM for 30s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
fi
unmount_leftovers
echo "docker_down: stopped pid $pid" >&2
