#!/usr/bin/env bash
# The whole test suite, in the project's own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
