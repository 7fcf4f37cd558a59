#!/usr/bin/env bash
# Build the mcp-gate image and smoke-test it. Needs .ci/docker_up.sh and .ci/docker_standin.sh first.
# Usage: .ci/docker_build.sh [context-dir] [tag]   (defaults: repo root, mcp-gate:test)
set -euo pipefail
cd "$(dirname "$0")/.."
ctx=${1:-.}
tag=${2:-mcp-gate:test}
: "${DOCKER_HOST:?run: eval \"\$(bash .ci/docker_up.sh)\"}"

# Debian's 20.10 client has BuildKit built in; the 28.x client in /usr/local/bin needs the
# buildx plugin for BuildKit (absent here) and would fall back to the legacy builder, which
# knows neither --secret nor RUN --mount.
docker20=/usr/bin/docker

# The registry is reached through a TLS-intercepting proxy: its CA goes in as a build secret
# (mounted for the install step only, never in a layer). Without NODE_EXTRA_CA_CERTS, no secret.
secret=()
[[ -n ${NODE_EXTRA_CA_CERTS:-} && -s $NODE_EXTRA_CA_CERTS ]] && secret=(--secret "id=npm_ca,src=$NODE_EXTRA_CA_CERTS")

DOCKER_BUILDKIT=1 "$docker20" build --network host --progress=plain "${secret[@]}" \
  -f "$ctx/Dockerfile" -t "$tag" "$ctx"

# No host-added CA (e.g. the proxy's) may be anywhere in the image's layers.
for f in /usr/local/share/ca-certificates/*.crt; do
  [[ -e $f ]] || continue
  key=$(grep -v -- '-----' "$f" | tr -d '\r' | sed -n 5p)
  if docker save "$tag" | tar -xO | grep -aqF "$key"; then
    echo "docker_build: $f found inside $tag" >&2
    exit 1
  fi
done

# Smoke test: start it (loopback only), check it runs as 65534:65534 and its healthcheck passes.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
metrics_port=$(free_port)
cid=$(docker run -d --network host \
  -e LISTEN_ADDR=127.0.0.1:$port -e METRICS_ADDR=127.0.0.1:$metrics_port \
  -e UPSTREAM_URL=http://127.0.0.1:9 -e RESOURCE_URI=http://127.0.0.1:$port \
  -e AUTHORIZATION_SERVER=http://127.0.0.1:9 -e JWKS_URI=http://127.0.0.1:9/jwks \
  "$tag")
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
ok=
for _ in $(seq 20); do
  [[ $(docker inspect -f '{{.State.Running}}' "$cid") == true ]] || break
  if docker exec "$cid" /mcp-gate healthcheck >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
ids=$(awk '/^Uid:|^Gid:/ {print $2}' "/proc/$(docker inspect -f '{{.State.Pid}}' "$cid")/status" 2>/dev/null | paste -sd: || true)
docker logs "$cid" 2>&1 | tail -n 20 >&2
[[ -n $ok ]] || { echo "docker_build: container not healthy" >&2; exit 1; }
[[ $ids == 65534:65534 ]] || { echo "docker_build: runs as '$ids', want 65534:65534" >&2; exit 1; }

size=$(docker image inspect -f '{{.Size}}' "$tag")
gz=$(docker save "$tag" | gzip -c | wc -c)
echo "docker_build: $tag ok: uid:gid $ids, healthy; size $size bytes raw, $gz gzipped"
