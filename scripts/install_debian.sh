#!/usr/bin/env bash
# Install Debian packages the tests use: `install_debian.sh WHAT BINARY PACKAGE...` (WHAT names
# the need in messages). Idempotent and instant when BINARY exists. Never fails the caller:
# where it cannot install (no apt-get, not root and no passwordless sudo, no package mirror) it
# says why, and the tests that need BINARY skip with their own reason.
set -uo pipefail
what="$1"; binary="$2"; shift 2
[ -x "$binary" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$what: apt-get is not available; its tests will skip" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "$what: not root and no passwordless sudo; its tests will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# update only when the package lists do not know the packages yet
if ! apt-cache show "$@" >/dev/null 2>&1; then
  "${SUDO[@]}" apt-get update -qq || true
fi
if "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
  echo "$what installed: $*"
else
  echo "$what: apt-get install $* failed; its tests will skip" >&2
fi
exit 0
