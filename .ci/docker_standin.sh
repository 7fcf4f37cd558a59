#!/usr/bin/env bash
# Build a LOCAL STAND-IN for the official oven/bun:<ver>-debian image, which cannot be pulled here.
# It is tagged with the real name so the Dockerfile stays unchanged; it is labelled as a stand-in.
# Contents: Debian bookworm minbase (mmdebstrap) + ca-certificates + the bun binary from the
# npm package bun@<ver> (node_modules; run `npm ci` first) at /usr/local/bin/bun, bunx symlink.
# Needs the engine from .ci/docker_up.sh (DOCKER_HOST exported).
set -euo pipefail
cd "$(dirname "$0")/.."

ver=${BUN_VERSION:-1.4.5}
tag=oven/bun:$ver-debian
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "docker_standin: $tag already present" >&2
  exit 0
fi

# npm's bun postinstall moves the platform binary from @oven/bun-<plat>/bin/bun to bun/bin/bun.exe.
bun=
for c in node_modules/@oven/bun-linux-x64/bin/bun node_modules/bun/bin/bun.exe; do
  if [[ -x $c ]] && [[ $("$c" --version 2>/dev/null) == "$ver" ]]; then bun=$PWD/$c; break; fi
done
[[ -n $bun ]] || { echo "docker_standin: no bun $ver binary in node_modules (run npm ci)" >&2; exit 1; }

# The chroot gets its own ca-certificates run, so the host's additions in
# /usr/local/share/ca-certificates (the intercepting proxy CA) never enter the image; checked below.
# In the hooks, $1 is the chroot directory that mmdebstrap passes in (hence single quotes).
# shellcheck disable=SC2016
mmdebstrap --variant=minbase --include=ca-certificates --components=main \
  --customize-hook="install -m 0755 '$bun' \"\$1/usr/local/bin/bun\"" \
  --customize-hook='ln -s bun "$1/usr/local/bin/bunx"' \
  --customize-hook='mkdir -p "$1/usr/local/bun-node-fallback-bin" && ln -s /usr/local/bin/bun "$1/usr/local/bun-node-fallback-bin/node"' \
  --customize-hook='chroot "$1" sh -c "groupadd -g 1000 bun && useradd -u 1000 -g bun -s /bin/sh -m bun && mkdir -p /home/bun/app"' \
  bookworm - \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" |
  docker import \
    -c 'LABEL org.opencontainers.image.description="LOCAL STAND-IN for oven/bun (mmdebstrap bookworm + npm bun binary); not the official image"' \
    -c 'LABEL dev.mcp-gate.standin="true"' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bun-node-fallback-bin' \
    -c 'ENV BUN_RUNTIME_TRANSPILER_CACHE_PATH=0 BUN_INSTALL_BIN=/usr/local/bin' \
    -c 'WORKDIR /home/bun/app' \
    -c 'CMD ["/usr/local/bin/bun"]' \
    - "$tag" >&2

# Refuse to keep an image whose CA bundle contains any host-added certificate.
for f in /usr/local/share/ca-certificates/*.crt; do
  [[ -e $f ]] || continue
  key=$(grep -v -- '-----' "$f" | tr -d '\r' | sed -n 5p) # a line of key material, unique to that cert
  if docker run --rm --network none "$tag" grep -qxF "$key" /etc/ssl/certs/ca-certificates.crt; then
    docker rmi "$tag" >/dev/null
    echo "docker_standin: host CA $f leaked into $tag; removed it" >&2
    exit 1
  fi
done
docker run --rm --network none "$tag" bun --version >&2
echo "docker_standin: built $tag" >&2
