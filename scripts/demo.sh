#!/usr/bin/env bash
# The main job on the embedded default: install (scripts/setup.sh), then sample media -> plan ->
# apply -> plan on a local store in ./demo (no AWS needed). Re-running it re-plans: no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/reconcile demo --dir "${1:-demo}"
