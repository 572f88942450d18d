#!/usr/bin/env bash
# Fresh machine → virtual environment → the main job (`chestclip demo`), offline, a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/chestclip demo --out "${1:-runs/demo}" --overwrite
