#!/usr/bin/env bash
# Creates .venv and installs chestclip into it: `bash scripts/setup.sh [EXTRAS]`, e.g. nothing
# (the core: what the demo and `chestclip run` need), `serve,onnx`, or `dev` (every extra and the
# test tools). torch is pinned and installed first, from the right index: a plain
# `pip install torch` on Linux pulls PyPI's multi-GB CUDA build.
#   CHESTCLIP_TORCH        the torch requirement [torch==2.13.0]
#   CHESTCLIP_TORCH_INDEX  the index it comes from; unset: a wheel pip's own configuration offers
#                          (find-links, as on CI), else PyPI's CUDA build where nvidia-smi runs,
#                          else the CPU build (https://download.pytorch.org/whl/cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${CHESTCLIP_TORCH:-torch==2.13.0}"
EXTRAS="${1:-}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip)
"${PIP[@]}" install --quiet --upgrade pip

if [ -n "${CHESTCLIP_TORCH_INDEX+set}" ]; then
    INDEX="$CHESTCLIP_TORCH_INDEX"
elif "${PIP[@]}" install --quiet --dry-run --no-index --no-deps --ignore-installed "$TORCH_SPEC" \
    >/dev/null 2>&1; then
    INDEX=""  # offered without the network: pip's configuration knows where it is
elif command -v nvidia-smi >/dev/null 2>&1; then
    INDEX=""  # PyPI's (or the configured index's) Linux torch is the CUDA build
else
    INDEX="https://download.pytorch.org/whl/cpu"
fi
"${PIP[@]}" install --quiet "$TORCH_SPEC" ${INDEX:+--index-url "$INDEX"}
"${PIP[@]}" install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
