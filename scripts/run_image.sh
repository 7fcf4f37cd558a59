#!/usr/bin/env bash
# Runs the mcp-gate image the way the black-box tests run any other form: the gateway's
# environment variables (those `mcp-gate --help` lists) are passed through, host network,
# stdio attached, signals proxied, the container removed on exit.
#   MCPGATE_IMAGE=mcp-gate:test scripts/run_image.sh [mcp-gate arguments...]
set -euo pipefail
image=${MCPGATE_IMAGE:-mcp-gate:test}
args=(run --rm -i --network host --sig-proxy=true)
for name in $(compgen -e); do
  case $name in
    LISTEN_ADDR | UPSTREAM_URL | RESOURCE_* | AUTHORIZATION_SERVER | JWKS_URI | EXPECTED_* | REQUIRED_SCOPES | \
      SCOPES_SUPPORTED | SCOPE_* | AUTH_REALM | ALLOWED_* | CLOCK_SKEW | JWKS_* | TRUSTED_PROXIES | UPSTREAM_TIMEOUT | \
      MAX_* | RATE_LIMIT_* | USER_RATE_LIMIT_* | REDIS_* | INTROSPECTION_* | READ_TIMEOUT | IDLE_TIMEOUT | \
      SHUTDOWN_TIMEOUT | LOG_LEVEL | METRICS_ADDR | IDENTITY_HEADERS | CLAIM_HEADERS | STRIP_REQUEST_HEADERS | \
      FORWARD_ACCESS_TOKEN | TOKEN_CACHE_SIZE | OTEL_* | BUN_CONFIG_MAX_HTTP_REQUESTS) args+=(-e "$name") ;;
  esac
done
# SCOPE_RULES=@<path>: the rules file lives on the host; mount its directory read-only at the
# same path, as a user of the image would with `-v`, so the path means the same inside.
if [[ ${SCOPE_RULES:-} == @/* ]]; then
  rules_dir=$(dirname "${SCOPE_RULES#@}")
  [ -d "$rules_dir" ] && args+=(-v "$rules_dir:$rules_dir:ro")
fi
exec docker "${args[@]}" "$image" "$@"
