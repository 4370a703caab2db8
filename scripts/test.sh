#!/usr/bin/env bash
# Install everything the tests need (scripts/setup.sh --test), lint, then run the whole suite
# with the project venv's Python (its bin/ first on PATH, as `source .venv/bin/activate` would):
# on RECONCILER_TEST_WORKERS processes (default: twice the cores, since most tests wait on
# moto, ffmpeg or a browser rather than compute), in random order (pytest-randomly; the seed is
# printed at the top; `scripts/test.sh --randomly-seed=N` replays it), with the 15 slowest tests
# reported. Each file is one worker's unit (--dist loadfile), handed out longest first by the
# last run's times (tests/conftest.py; --no-loadscope-reorder keeps xdist from re-sorting them
# by number of tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
# Python keeps compiled modules (__pycache__/, git-ignored) between runs, pytest the test
# modules it rewrote for assertions: with PYTHONDONTWRITEBYTECODE set, every worker rewrote
# ~320 modules at each start (~3 s of CPU each) and every `reconcile` the tests start compiled
# the package again.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/python -m ruff check reconciler tests bench scripts
workers=${RECONCILER_TEST_WORKERS:-$((2 * $(nproc)))}
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadfile --no-loadscope-reorder --durations=15 "$@"
