#!/usr/bin/env bash
# The main job: the demo experiment (SciFact and TREC DL 2019), printed as a table;
# JSON and HTML report in results/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/rankstack experiment experiments/demo.toml "$@"
