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
  # Redis failover tests: a primary, a replica and three sentinels
  [redis-sentinel]=redis-sentinel
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [openssl]=openssl
  # docker.io also brings Debian's client as /usr/bin/docker, which the harness
  # runs by that path: another `docker` may come first on PATH (this image has a
  # newer static CLI in /usr/local/bin that no package owns).
  [dockerd]=docker.io
  [containerd]=containerd
  [ctr]=containerd
  # linters the deploy tests run on shell scripts and static YAML
  [shellcheck]=shellcheck
  [yamllint]=yamllint
  # the status page is tested in a real browser (puppeteer-core drives it)
  [chromium]=chromium
)

# Python module -> Debian package that lets /usr/bin/python3 import it. The PyPI
# tests build wheels and sdists offline with Debian's python, whose modules
# apt manages; the `python3` first on PATH may be another one (a pyenv shim).
declare -A python_modules=(
  [pip]=python3-pip
  [setuptools]=python3-setuptools
  [wheel]=python3-wheel
)

# file -> Debian package that ships it: a real, not generated, wheel the PyPI
# fixtures serve next to the ones they build.
declare -A files=(
  [/usr/share/python-wheels/setuptools-*-py3-none-any.whl]=python3-setuptools-whl
)

missing=()
need() {
  # one package can provide several commands (containerd, ctr): name it once
  [[ " ${missing[*]} " == *" $1 "* ]] || missing+=("$1")
}
for cmd in "${!needed[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need "${needed[$cmd]}"
done
for module in "${!python_modules[@]}"; do
  /usr/bin/python3 -c "import $module" >/dev/null 2>&1 || need "${python_modules[$module]}"
done
for pattern in "${!files[@]}"; do
  # compgen -G succeeds when the glob matches at least one file
  compgen -G "$pattern" >/dev/null || need "${files[$pattern]}"
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
