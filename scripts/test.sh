#!/usr/bin/env bash
# Install everything the tests need (scripts/setup.sh --test), lint, then run the whole suite
# with the project venv's Python (its bin/ first on PATH, as `source .venv/bin/activate` would).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/python -m ruff check reconciler tests bench scripts
exec .venv/bin/python -m pytest -q "$@"
