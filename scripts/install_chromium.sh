#!/usr/bin/env bash
# Debian's Chromium for the `feast ui` browser test (tests/test_feast_ui_browser.py). Idempotent
# and instant when /usr/bin/chromium exists. Never fails the caller: where it cannot install
# (no apt-get, not root and no passwordless sudo, no package mirror) it says why and the browser
# test skips with that reason.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: apt-get is not available; the browser test will skip" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "chromium: not root and no passwordless sudo; the browser test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null)"
else
  echo "chromium: apt-get install failed; the browser test will skip" >&2
fi
exit 0
