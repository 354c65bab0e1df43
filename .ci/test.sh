#!/usr/bin/env bash
# Every test. The core tests run first with PySide6 made unimportable (core/ must not need Qt), then the rest.
# Prints one closing line with the totals of both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export QT_QPA_PLATFORM=offscreen
out=$(mktemp -d)
status=0
$BIN/lint-imports || status=1
$BIN/ruff check core desktop training tests benchmarks packaging tools || status=1
$BIN/ruff format --check core desktop training tests benchmarks packaging tools || status=1
LOOKALIKE_BLOCK_QT=1 $BIN/python -m pytest tests/core -p no:pytest-qt -q --junitxml="$out/core.xml" "$@" || status=1
$BIN/python -m pytest tests --ignore=tests/core --ignore=tests/packaging -q --junitxml="$out/rest.xml" "$@" || status=1
# The package test (PyInstaller bundle, .deb into a clean debootstrap Debian, the window under Xvfb) takes
# 1.5-4 minutes and needs root: run it when time allows (LOOKALIKE_QUICK=1 skips it).
started=${LOOKALIKE_CI_START:-$(date +%s)}
if [ "${LOOKALIKE_QUICK:-0}" != 1 ] && [ "$(id -u)" = 0 ] && [ $(( $(date +%s) - started )) -lt 2700 ]; then
    for p in debootstrap xdotool imagemagick desktop-file-utils; do
        dpkg -s "$p" >/dev/null 2>&1 || need="${need:-} $p"
    done
    if [ -n "${need:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/tmp/lookalike-apt.log 2>&1 \
            || echo "could not install$need: the package tests will skip what needs them"
    fi
    LOOKALIKE_PACKAGE_TESTS=1 $BIN/python -m pytest tests/packaging -q --junitxml="$out/package.xml" "$@" || status=1
else
    echo "package tests not run (LOOKALIKE_QUICK=1, not root, or past the time budget)"
fi
$BIN/python - "$out"/*.xml <<'PY'
import sys, xml.etree.ElementTree as ET
t = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for f in sys.argv[1:]:
    try:
        root = ET.parse(f).getroot()
    except (OSError, ET.ParseError):
        t["errors"] += 1
        continue
    for s in root.iter("testsuite"):
        for k in t:
            t[k] += int(s.get(k, 0))
failed = t["failures"] + t["errors"]
print(f"total: {t['tests'] - failed - t['skipped']} passed, {failed} failed, {t['skipped']} skipped")
PY
exit $status
