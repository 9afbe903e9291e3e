#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks. Idempotent.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
need=()
have redis-server || need+=(redis-server)
have nginx || need+=(nginx-light)
have haproxy || need+=(haproxy)
have chromium || need+=(chromium)
have node || need+=(nodejs)
have npm || need+=(npm)
# The image test builds and runs the container image (make image) with
# podman and runc as root, with no daemon and no registry.
have podman || need+=(podman)
have runc || need+=(runc)
# The docs' runnable examples make secrets with `openssl rand`.
have openssl || need+=(openssl)

# Node packages of the tests, installed with `npm ci` from their committed
# lock files where node_modules lacks them: the chaos test's third-party
# clients (the eventsource package and playwright-core, which drives Debian's
# chromium; it downloads no browser), and the browser client's development
# dependencies (playwright-core for its browser tests, esbuild to measure it).
node_packages() {
  local root spec dir pkgs p
  root="$(dirname "$0")/.."
  for spec in "deploy/chaos:eventsource playwright-core" "clients/js:playwright-core esbuild"; do
    dir="$root/${spec%%:*}"
    pkgs="${spec#*:}"
    for p in $pkgs; do
      if [ ! -d "$dir/node_modules/$p" ]; then
        echo "installing the node packages of ${spec%%:*} (npm ci)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        break
      fi
    done
  done
}

if [ ${#need[@]} -eq 0 ]; then
  node_packages
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]}; install them with your package manager (no apt-get here)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "missing: ${need[*]}; run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The packages' own services are not used: the tests start their own
# servers on free ports.
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
node_packages
