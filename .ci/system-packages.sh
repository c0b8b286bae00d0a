#!/usr/bin/env bash
# Debian packages some tests need on a fresh machine (see PACKAGES). Installs only what is missing; when apt cannot
# (no root, no network) it says so and the tests that need them skip with the reason.
set -uo pipefail
# chromium: the report's browser test; xvfb + Mesa (GLX, llvmpipe): the X display through which Qt's offscreen
# platform gets OpenGL for napari's canvas; the rest: what the PyQt5 wheel's Qt libraries link against.
PACKAGES=(chromium xvfb libgl1 libglx-mesa0 libgl1-mesa-dri libegl1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3
    libfontconfig1 libfreetype6 libglib2.0-0 libx11-xcb1 libxcb-xkb1 libxcb-render-util0 libxcb-image0)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "note: cannot install ${missing[*]} (needs root and apt-get); browser/napari tests may skip" >&2
    exit 0
fi
echo "installing ${missing[*]}" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; }; then
    echo "note: apt-get could not install ${missing[*]}; browser/napari tests may skip" >&2
fi
exit 0
