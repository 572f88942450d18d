#!/usr/bin/env bash
# Creates .venv and installs chestclip into it: `bash scripts/setup.sh [EXTRAS]`, e.g. nothing
# (the core: what the demo and `chestclip run` need), `serve,onnx`, or `dev` (every extra and the
# test tools). torch is pinned and installed first: any unpinned `torch` requirement would
# otherwise pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${CHESTCLIP_TORCH:-torch==2.13.0}"
EXTRAS="${1:-}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
