#!/usr/bin/env bash
# Fresh machine → virtual environment → the main job, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${1:-runs/demo}"
rm -rf "$OUT/phantoms"
.venv/bin/chestclip phantom --out "$OUT/phantoms" --studies 200 --image-size 512
.venv/bin/chestclip prepare --source "$OUT/phantoms" --out "$OUT/prepared" --image-size 224
