#!/usr/bin/env bash
# Start a private Docker engine for CI (idempotent).
# stdout carries only `export` lines, so callers can do:  eval "$(bash .ci/docker_up.sh)"
# Everything else goes to stderr. Stop it with .ci/docker_down.sh.
set -euo pipefail

root=${MCPGATE_DOCKER_ROOT:-/tmp/mcpgate-docker}
sock=$root/docker.sock
pidfile=$root/dockerd.pid
export DOCKER_HOST=unix://$sock

log() { echo "docker_up: $*" >&2; }

# Debian's docker.io is 20.10 (API 1.41); /usr/local/bin/docker (28.x) negotiates down to it.
# mmdebstrap is for .ci/docker_standin.sh.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  # A failing third-party list must not stop us; the install below fails loudly if it matters.
  apt-get update -qq >&2 || log "apt-get update reported errors"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

running() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if running && docker info >/dev/null 2>&1; then
  log "already running (pid $(cat "$pidfile"))"
else
  mkdir -p "$root"
  # No bridge/iptables: builds and runs use --network host, and nothing touches the host firewall.
  # setsid + closed stdio so the daemon never holds the caller's terminal or pipes open.
  setsid dockerd \
    --bridge=none --iptables=false --ip6tables=false \
    --data-root "$root/data" --exec-root "$root/exec" --pidfile "$pidfile" \
    --host "unix://$sock" \
    --containerd-namespace mcpgate --containerd-plugins-namespace mcpgate-plugins \
    </dev/null >"$root/dockerd.log" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not come up in 60s; tail of $root/dockerd.log:"
    tail -n 30 "$root/dockerd.log" >&2
    exit 1
  fi
  log "started (pid $(cat "$pidfile"), storage driver $(docker info -f '{{.Driver}}'))"
fi

echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export MCPGATE_DOCKERD_PIDFILE=$pidfile"
