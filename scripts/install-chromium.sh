#!/usr/bin/env bash
# Installs Debian's chromium for the status-page browser test
# (tests/all/ui.rs), which runs this script itself when /usr/bin/chromium
# is missing. Needs root or passwordless sudo and Debian's package
# archive; it downloads no browser build of its own.
#
#   scripts/install-chromium.sh        # idempotent: does nothing if installed
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install-chromium.sh: installing chromium needs root (or passwordless sudo):" >&2
    echo "  sudo apt-get install -y --no-install-recommends chromium" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: no apt-get here; install Debian's chromium package by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine.
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium
"$CHROMIUM" --version
