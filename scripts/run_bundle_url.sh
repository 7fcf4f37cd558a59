#!/usr/bin/env bash
# Runs dist/mcp-gate.js the way users run it: from a URL, with an empty Deno cache.
#
#   scripts/run_bundle_url.sh [mcp-gate arguments...]
#
# Serves dist/ (or $MCPGATE_DIST_DIR) on 127.0.0.1 with scripts/serve_dist.ts, then *execs*
#   deno run --unstable-no-legacy-abort --allow-net --allow-env http://127.0.0.1:PORT/mcp-gate.js "$@"
# so the caller's process is the gateway itself: same PID, signals, stdio and exit code.
# The static server and the temporary DENO_DIR go away once that process has exited.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=${MCPGATE_DIST_DIR:-$root/dist}
deno=${DENO:-$(command -v deno || echo "$root/node_modules/.bin/deno")}
[[ -f $dist/mcp-gate.js ]] || { echo "run_bundle_url: no $dist/mcp-gate.js (run: deno task bundle)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcp-gate-url.XXXXXX")
# Background helpers get no stdio of ours: a reader of our stdout must see EOF when we exit.
"$deno" run --no-config --allow-net=127.0.0.1 --allow-read="$dist" "$root/scripts/serve_dist.ts" "$dist" \
  >"$tmp/url" 2>/dev/null </dev/null &
server=$!
# $$ stays this process's PID across exec: clean up once the gateway is gone.
(
  while kill -0 $$ 2>/dev/null; do sleep 0.5; done
  kill "$server" 2>/dev/null || true
  rm -rf "$tmp"
) >/dev/null 2>&1 </dev/null &

for _ in $(seq 200); do
  [[ -s $tmp/url ]] && break
  sleep 0.05
done
url=$(head -n 1 "$tmp/url")
[[ $url == http://127.0.0.1:* ]] || { echo "run_bundle_url: the static server did not start" >&2; exit 1; }

export DENO_DIR=$tmp/deno_dir
# --allow-read: SCOPE_RULES=@<path> reads its rules file (without it, start-up names the missing flag).
exec "$deno" run --v8-flags=--max-semi-space-size=4 --unstable-no-legacy-abort --allow-net --allow-env --allow-read "${url}mcp-gate.js" "$@"
