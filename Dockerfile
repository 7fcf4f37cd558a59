# mcp-gate container image: one bun-compiled executable on an empty (scratch) base, run as nobody.
#
# Build (BuildKit is needed for the secret mount; Docker >= 20.10):
#   DOCKER_BUILDKIT=1 docker build -t mcp-gate .
# Behind a TLS-intercepting proxy, hand its CA in as a build secret; it is mounted only for the
# install step and never stored in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=npm_ca,src=/path/to/proxy-ca.pem -t mcp-gate .
#
# In this project's CI the oven/bun image below is a locally built stand-in (.ci/docker_standin.sh),
# because no image can be pulled there.

FROM oven/bun:1.4.5-debian AS build
WORKDIR /src

# Runtime deps only (hono, jose). bun reads package-lock.json directly (no bun.lock needed).
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    bun install --production --frozen-lockfile --no-progress

COPY . .
# No .env / bunfig.toml autoloading from the runtime cwd: config comes from the environment only.
# Bun's own header limit (16 KiB by default, answered with its own 431) is raised so that the
# gateway enforces MAX_HEADER_BYTES itself, up to 256 KiB.
RUN bun build ./mod.ts --compile --minify --bytecode --format=esm \
      --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
      --compile-exec-argv=--max-http-header-size=262144 \
      --outfile /out/mcp-gate

# Assemble the runtime tree: the binary, the shared libraries ldd names (whatever the arch),
# Debian's CA bundle, a nobody user, and a sticky /tmp.
RUN set -eu; \
    mkdir -p /rootfs/etc/ssl/certs; \
    install -m 0755 /out/mcp-gate /rootfs/mcp-gate; \
    for lib in $(ldd /out/mcp-gate | grep -o '/[^ ]*'); do cp -L --parents "$lib" /rootfs; done; \
    test -s /etc/ssl/certs/ca-certificates.crt; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    echo 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'nogroup:x:65534:' > /rootfs/etc/group; \
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    install -d -m 1777 /rootfs/tmp

FROM scratch
COPY --from=build /rootfs /
# Bun's fetch runs 256 upstream requests at once unless told otherwise at start-up; the gateway raises
# it to Bun's maximum itself by re-executing when it is unset, which costs one more start (~35 ms): set
# here, the image starts once.
ENV BUN_CONFIG_MAX_HTTP_REQUESTS=65535
USER 65534:65534
EXPOSE 8080 9090
ENTRYPOINT ["/mcp-gate"]
HEALTHCHECK CMD ["/mcp-gate", "healthcheck"]
