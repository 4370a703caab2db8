#!/usr/bin/env bash
# The main job on the embedded default: install, then sample media -> plan -> apply -> plan
# on a local store in ./demo (no AWS needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec reconcile demo --dir "${1:-demo}"
