#!/usr/bin/env bash
# The whole suite, as the README's test command runs it: build the compiled binary and the
# URL bundle, then run unit, black-box, interop, distribution, fault and fuzz tests against
# every form of the gateway (deno run, bun run, dist/mcp-gate, dist/mcp-gate.js from a URL).
# Extra arguments go to `deno test` (e.g. --filter); MCPGATE_TEST_TARGETS narrows the forms.
set -euo pipefail
cd "$(dirname "$0")/.."
deno task compile
deno task bundle
export MCPGATE_DIST_DIR=dist
export MCPGATE_TEST_TARGETS=${MCPGATE_TEST_TARGETS:-deno,bun,binary,bundle}
exec deno test -A --import-map tests/offline_import_map.json "$@" tests/
