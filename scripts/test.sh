#!/usr/bin/env bash
# Install everything the tests need, lint, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
python3 -m ruff check reconciler tests bench scripts
python3 -m pytest -q "$@"
