#!/usr/bin/env bash
# System libraries Qt needs (offscreen and xcb platforms), plus Xvfb for screenshots. Installed only when
# missing, and only where we are root with apt-get (CI and the dev machines); elsewhere we say what is needed.
set -u
pkgs="libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 libxcb-cursor0
      libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0
      libxcb-randr0 libxcb-xfixes0 xvfb xauth fonts-dejavu-core"
# With --test: the serve page's browser test (tests/serve/test_page.py) drives Debian's chromium; it skips
# without it, so a failure here is only a note. `make run` does not ask for it: the app does not need a browser.
if [ "${1:-}" = "--test" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s chromium chromium-driver >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver) >/tmp/lookalike-apt-chromium.log 2>&1 \
        || echo "could not install chromium (see /tmp/lookalike-apt-chromium.log): the serve page test will skip"
fi
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >/tmp/lookalike-apt.log 2>&1 \
        || { echo "apt-get failed, see /tmp/lookalike-apt.log"; exit 1; }
else
    echo "Qt may need these system packages:$missing"
fi
