#!/usr/bin/env bash
# Build llama.cpp's native tools (llama-server, llama-quantize, llama-bench) from the exact llama.cpp
# source that the pinned llama-cpp-python sdist vendors, and cache them outside the repo keyed by version.
# A fresh machine pays ~20 min once; later runs return at once.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${SLM_BUILD_CACHE:-$HOME/.cache/slm-appliance}"
# CUDA build (-DGGML_CUDA=ON) when the box has an NVIDIA GPU and the toolkit: SLM_LLAMA_CUDA=auto (default),
# 1 to insist, 0 for the CPU build. A GPU without nvcc gets the CPU build and says so.
CUDA_MODE="${SLM_LLAMA_CUDA:-auto}"
has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }
CUDA=0
if [[ "$CUDA_MODE" == 1 ]]; then
  command -v nvcc >/dev/null || { echo "SLM_LLAMA_CUDA=1 but nvcc (the CUDA toolkit) is not on PATH" >&2; exit 1; }
  CUDA=1
elif [[ "$CUDA_MODE" == auto ]] && has_gpu; then
  if command -v nvcc >/dev/null; then CUDA=1; else
    echo "an NVIDIA GPU is present but nvcc is not: building the CPU llama-server (install the CUDA toolkit and" \
         "rerun for GPU offload; gpu_layers has no effect until then)" >&2
  fi
fi
SUFFIX=""; GGML_CUDA=OFF
if [[ $CUDA == 1 ]]; then SUFFIX="-cuda"; GGML_CUDA=ON; fi
PREFIX="$CACHE/llama.cpp-$VERSION$SUFFIX"
BIN="$PREFIX/bin"
TARGETS=(llama-server llama-quantize llama-bench)

if [[ -x "$BIN/llama-server" && -x "$BIN/llama-quantize" && -x "$BIN/llama-bench" ]]; then
  echo "llama.cpp tools $VERSION already built in $BIN"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
SRC_DIR="$CACHE/src"
SDIST="$SRC_DIR/llama_cpp_python-$VERSION.tar.gz"
mkdir -p "$SRC_DIR"
if [[ ! -f "$SDIST" ]]; then
  echo "downloading llama-cpp-python $VERSION sdist (vendors llama.cpp)"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "llama-cpp-python==$VERSION" -d "$SRC_DIR" || \
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC_DIR"
fi

WORK="$CACHE/build-$VERSION$SUFFIX"
rm -rf "$WORK"
mkdir -p "$WORK"
tar -xzf "$SDIST" -C "$WORK"
LLAMA_SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"

# GGML_NATIVE=OFF: a native build with AMX crashes in ldtilecfg on these CPUs.
# No curl/OpenSSL/web UI: the box is offline and the UI download would fail.
cmake -S "$LLAMA_SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
  -DGGML_CUDA="$GGML_CUDA"
cmake --build "$WORK/build" --config Release -j "$(nproc)" --target "${TARGETS[@]}"

mkdir -p "$BIN.tmp"
for t in "${TARGETS[@]}"; do cp "$WORK/build/bin/$t" "$BIN.tmp/"; done
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
rm -rf "$WORK"
echo "built llama.cpp tools $VERSION into $BIN"
