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
# CPU variants chosen at run time (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS): one libggml-cpu-<variant>.so per x86
# level (x64 … haswell, skylakex, icelake, zen4, sapphirerapids) beside the tools, the best one for the CPU loaded
# at start. SLM_LLAMA_CPU_VARIANTS=1 to build them, 0 for one static AVX2-level build.
VARIANTS="${SLM_LLAMA_CPU_VARIANTS:-0}"
SUFFIX=""; GGML_CUDA=OFF
if [[ $CUDA == 1 ]]; then SUFFIX="-cuda"; GGML_CUDA=ON; VARIANTS=0
elif [[ $VARIANTS == 1 ]]; then SUFFIX="-cpu-variants"; fi
PREFIX="$CACHE/llama.cpp-$VERSION$SUFFIX"
BIN="$PREFIX/bin"
TARGETS=(llama-server llama-quantize llama-bench)

if [[ -x "$BIN/llama-server" && -x "$BIN/llama-quantize" && -x "$BIN/llama-bench" ]]; then
  echo "llama.cpp tools $VERSION$SUFFIX already built in $BIN"
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
LINK=(-DBUILD_SHARED_LIBS=OFF)
if [[ $VARIANTS == 1 ]]; then
  # Backends as loadable modules need shared ggml/llama libraries; $ORIGIN: they are found beside the tools.
  LINK=(-DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON
        "-DCMAKE_BUILD_RPATH=\$ORIGIN" -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON)
fi
cmake -S "$LLAMA_SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF "${LINK[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
  -DGGML_CUDA="$GGML_CUDA"
BUILD_TARGETS=("${TARGETS[@]}")
if [[ $VARIANTS == 1 ]]; then
  # The variant modules are loaded at run time, so no tool depends on them: name them.
  mapfile -t CPU_VARIANTS < <(cmake --build "$WORK/build" --target help | grep -o 'ggml-cpu-[a-z0-9_.]*' | sort -u)
  BUILD_TARGETS+=("${CPU_VARIANTS[@]}")
fi
cmake --build "$WORK/build" --config Release -j "$(nproc)" --target "${BUILD_TARGETS[@]}"

mkdir -p "$BIN.tmp"
for t in "${TARGETS[@]}"; do cp "$WORK/build/bin/$t" "$BIN.tmp/"; done
if [[ $VARIANTS == 1 ]]; then cp -P "$WORK/build/bin/"*.so* "$BIN.tmp/"; fi
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
rm -rf "$WORK"
echo "built llama.cpp tools $VERSION into $BIN"
