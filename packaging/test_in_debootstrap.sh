#!/usr/bin/env bash
# Install a Lookalike .deb into a clean Debian root (debootstrap --variant=minbase) and run it there:
#   1. apt-get install ./lookalike_*.deb  (pulls exactly the Depends, nothing else)
#   2. lookalike --self-test              (headless engine: must find the demo's groups)
#   3. lookalike-gui on the demo folder   (real window on an Xvfb display, timed, with a screenshot)
# Usage: sudo packaging/test_in_debootstrap.sh DIST/lookalike_<v>_amd64.deb OUTDIR
# Writes OUTDIR/result.json, OUTDIR/self-test.json, OUTDIR/apt.log, OUTDIR/gui.log, OUTDIR/screenshot.png.
# Needs root, debootstrap, network to a Debian mirror; for step 3 Xvfb, xdotool and ImageMagick's `import`.
# Xvfb runs on the host and only its socket is bind-mounted into the root: installing Xvfb inside would also
# install libraries (libGL, fonts, xkb data) that could hide a missing Depends.
# The debootstrap download is cached as a tarball under $LOOKALIKE_DEBOOTSTRAP_CACHE (default
# /var/tmp/lookalike-debootstrap) so later runs only unpack it.
set -euo pipefail
DEB=$(readlink -f "${1:?usage: $0 DEB OUTDIR}")
OUT=$(mkdir -p "${2:?usage: $0 DEB OUTDIR}" && readlink -f "$2")
CACHE=${LOOKALIKE_DEBOOTSTRAP_CACHE:-/var/tmp/lookalike-debootstrap}
SUITE=${LOOKALIKE_DEBIAN_SUITE:-bookworm}
GUI_WAIT=${LOOKALIKE_GUI_WAIT:-30}   # seconds allowed for the window to appear
SCAN_WAIT=${LOOKALIKE_SCAN_WAIT:-8}  # seconds the app gets to scan the demo before the screenshot

[ "$(id -u)" = 0 ] || { echo "test_in_debootstrap: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "test_in_debootstrap: apt-get install debootstrap" >&2; exit 2; }

# The mirror apt already uses on this machine (deb822 .sources or one-line .list), else Debian's CDN.
MIRROR=${LOOKALIKE_DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
  /etc/apt/sources.list.d/*.list 2>/dev/null | grep -oE '^(URIs:|deb)[[:space:]]+[^[:space:]]+' |
  awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

mkdir -p "$CACHE"
TARBALL=$CACHE/$SUITE-minbase.tgz      # debootstrap --make-tarball: the downloaded .debs
ROOTTAR=$CACHE/$SUITE-minbase-root.tar # the finished, untouched base root (unpacking beats re-configuring)
ROOT=$(mktemp -d "$CACHE/root.XXXXXX")
XVFB_PID=""
APP_PID=""
cleanup() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  # Anything else still running inside this root was started by this script (apt, the app): end it by pid.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null || true
  done
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
  for m in "$ROOT/tmp/.X11-unix" "$ROOT/proc"; do
    if mountpoint -q "$m"; then umount "$m" || umount -l "$m"; fi
  done
  # Never delete through a mount: the X socket folder is the host's.
  if ! mountpoint -q "$ROOT/tmp/.X11-unix" 2>/dev/null && ! mountpoint -q "$ROOT/proc" 2>/dev/null; then
    rm -rf "$ROOT"
  fi
}
trap cleanup EXIT

t0=$(now)
if [ -s "$ROOTTAR" ]; then
  tar -C "$ROOT" --numeric-owner -xpf "$ROOTTAR"
else
  if [ ! -s "$TARBALL" ]; then
    scratch=$(mktemp -d "$CACHE/download.XXXXXX")
    # Exit 75 (EX_TEMPFAIL) when the mirror cannot be reached: the test skips, it does not fail.
    debootstrap --variant=minbase --make-tarball="$TARBALL.partial" "$SUITE" "$scratch" "$MIRROR" \
      >"$OUT/debootstrap.log" 2>&1 || { echo "test_in_debootstrap: cannot download from $MIRROR" >&2; exit 75; }
    rm -rf "$scratch"
    mv "$TARBALL.partial" "$TARBALL"
  fi
  debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$ROOT" "$MIRROR" >>"$OUT/debootstrap.log" 2>&1
  tar -C "$ROOT" --numeric-owner -cpf "$ROOTTAR.partial" . && mv "$ROOTTAR.partial" "$ROOTTAR"
fi
t_root=$(now)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
cp "$DEB" "$ROOT/tmp/"
pkgs_before=$(chroot "$ROOT" dpkg-query -W -f='.\n' | wc -l)
chroot "$ROOT" apt-get update -q >"$OUT/apt.log" 2>&1 \
  || { echo "test_in_debootstrap: apt-get update failed inside the root (mirror unreachable?)" >&2; exit 75; }
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "/tmp/$(basename "$DEB")" >>"$OUT/apt.log" 2>&1
pkgs_after=$(chroot "$ROOT" dpkg-query -W -f='.\n' | wc -l)
t_installed=$(now)

set +e
chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root lookalike --self-test >"$OUT/self-test.json" 2>"$OUT/self-test.err"
self_rc=$?
t_self=$(now)
chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root lookalike scan -q --no-cache --json - \
  /opt/lookalike/_internal/resources/demo >"$OUT/cli-scan.json" 2>"$OUT/cli-scan.err"
cli_rc=$?
set -e

gui="skipped"
window_s=null
alive=null
if command -v Xvfb >/dev/null && command -v xdotool >/dev/null; then
  n=90
  while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
  Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
  XVFB_PID=$!
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
  mkdir -p "$ROOT/tmp/.X11-unix"
  mount --bind /tmp/.X11-unix "$ROOT/tmp/.X11-unix"
  sync
  t_start=$(now)
  chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root DISPLAY=":$n" \
    lookalike-gui /opt/lookalike/_internal/resources/demo >"$OUT/gui.log" 2>&1 &
  APP_PID=$!
  gui="no window"
  deadline=$(awk -v t="$t_start" -v w="$GUI_WAIT" 'BEGIN { printf "%.0f", t + w }')
  while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$APP_PID" 2>/dev/null; do
    if DISPLAY=":$n" xdotool search --onlyvisible --name Lookalike >/dev/null 2>&1; then
      window_s=$(elapsed "$t_start" "$(now)")
      gui="window"
      break
    fi
    sleep 0.05
  done
  if [ "$gui" = window ]; then
    sleep "$SCAN_WAIT"
    if command -v import >/dev/null; then import -display ":$n" -window root "$OUT/screenshot.png"; fi
    DISPLAY=":$n" xdotool search --onlyvisible --name Lookalike getwindowname %@ >"$OUT/window-titles.txt" || true
    kill -0 "$APP_PID" 2>/dev/null && alive=true || alive=false
  fi
fi

cat >"$OUT/result.json" <<EOF
{
  "suite": "$SUITE",
  "mirror": "$MIRROR",
  "packages_before": $pkgs_before,
  "packages_after": $pkgs_after,
  "root_seconds": $(elapsed "$t0" "$t_root"),
  "install_seconds": $(elapsed "$t_root" "$t_installed"),
  "self_test_rc": $self_rc,
  "self_test_seconds": $(elapsed "$t_installed" "$t_self"),
  "cli_rc": $cli_rc,
  "gui": "$gui",
  "window_seconds": $window_s,
  "alive_after_scan": $alive,
  "screenshot": $([ -s "$OUT/screenshot.png" ] && echo true || echo false)
}
EOF
cat "$OUT/result.json"
