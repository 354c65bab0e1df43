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
LOOKALIKE_BLOCK_QT=1 $BIN/python -m pytest tests/core -p no:pytest-qt -q --junitxml="$out/core.xml" "$@" || status=1
$BIN/python -m pytest tests --ignore=tests/core -q --junitxml="$out/rest.xml" "$@" || status=1
$BIN/python - "$out"/core.xml "$out"/rest.xml <<'PY'
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
