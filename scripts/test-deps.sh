#!/usr/bin/env bash
# Installs the system packages the tests drive (real servers and clients, never
# mocks) when they are missing. As root it runs apt-get; otherwise it prints the
# one command to run and stops.
set -euo pipefail
# dockerd lives in sbin, which a non-root or non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

# command on PATH -> Debian package that provides it
declare -A needed=(
  [redis-server]=redis-server
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [openssl]=openssl
  # docker.io also brings Debian's client as /usr/bin/docker, which the harness
  # runs by that path: another `docker` may come first on PATH (this image has a
  # newer static CLI in /usr/local/bin that no package owns).
  [dockerd]=docker.io
  [containerd]=containerd
  [ctr]=containerd
)

missing=()
for cmd in "${!needed[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 && continue
  # one package can provide several commands (containerd, ctr): name it once
  [[ " ${missing[*]} " == *" ${needed[$cmd]} "* ]] || missing+=("${needed[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need these system packages. Install them, then run the tests again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing ${missing[*]} and no apt-get here; install them with your package manager." >&2
  exit 1
fi

echo "Installing test dependencies: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
