#!/usr/bin/env bash
# A clean Debian bookworm root for the packaging tests, cached outside the repo:
#   make-root.sh systemd    → a bootable root (systemd-nspawn -b) for the .deb test
#   make-root.sh container  → a tarball that `podman import` turns into the container base image
# Both already hold what the .deb depends on, so installing it there needs no network.
# Prints the path of the root (or tarball). A fresh machine pays ~1-2 min each, once.
set -euo pipefail
KIND="${1:?usage: make-root.sh systemd|container}"
CACHE="${SLM_BUILD_CACHE:-$HOME/.cache/slm-appliance}/roots"
SUITE=bookworm
# What the package needs at run time (see packaging/deb/control): python3 for the venv, the llama.cpp tools'
# shared libraries, deb-systemd-helper for the maintainer scripts.
DEPS="python3,libgomp1,libstdc++6,libgcc-s1,init-system-helpers,ca-certificates"
mkdir -p "$CACHE"
case "$KIND" in
  systemd)
    ROOT="$CACHE/$SUITE-systemd"
    if [[ ! -f "$ROOT/.complete" ]]; then
      rm -rf "$ROOT"
      mmdebstrap --quiet --variant=apt --include="systemd,systemd-sysv,dbus,$DEPS" "$SUITE" "$ROOT" >&2
      touch "$ROOT/.complete"
    fi
    echo "$ROOT" ;;
  container)
    TARBALL="$CACHE/$SUITE-container.tar"
    if [[ ! -f "$TARBALL" ]]; then
      # mmdebstrap picks the output format from the name: keep .tar at the end of the partial file too.
      mmdebstrap --quiet --variant=apt --include="$DEPS" "$SUITE" "$CACHE/partial-$SUITE-container.tar" >&2
      mv "$CACHE/partial-$SUITE-container.tar" "$TARBALL"
    fi
    echo "$TARBALL" ;;
  *) echo "unknown kind $KIND" >&2; exit 2 ;;
esac
