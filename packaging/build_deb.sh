#!/usr/bin/env bash
# Turn the PyInstaller folder dist/Lookalike/ into
#   dist/lookalike_<version>_amd64.deb          (double-click install: software centre, gdebi, apt install ./x.deb)
#   dist/lookalike-<version>-linux-x86_64.tar.gz (unpack anywhere, run lookalike-<version>/Lookalike)
# Needs: dpkg-deb (dpkg), tar, gzip, desktop-file-validate (desktop-file-utils, optional), objdump (binutils,
# optional: computes the glibc floor for Depends).
# Environment: DEB_COMPRESS=zstd (default; dpkg >= 1.21.18: Debian 12, Ubuntu 21.10+) or xz (any dpkg, slower);
# DIST=folder holding Lookalike/ and receiving the packages (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=${DIST:-dist}
APP=$DIST/Lookalike
[ -x "$APP/Lookalike" ] || { echo "build_deb: $APP/Lookalike missing; run 'make package' first" >&2; exit 1; }

VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=amd64
COMPRESS=${DEB_COMPRESS:-zstd}
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/lookalike-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/pkg

# The app folder, read-only for users; PyInstaller output is already self-contained.
install -d "$PKG/opt/lookalike" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/doc/lookalike" \
  "$PKG/DEBIAN"
cp -a "$APP/." "$PKG/opt/lookalike/"
chmod -R u=rwX,go=rX "$PKG/opt/lookalike"

# Commands: small wrappers rather than symlinks, so the role is explicit whatever name the user runs.
cat > "$PKG/usr/bin/lookalike" <<'EOF'
#!/bin/sh
# Lookalike's command-line tool (see `lookalike --help`); `lookalike --self-test` checks the installation.
if [ "${1:-}" = "--self-test" ]; then exec /opt/lookalike/Lookalike --self-test; fi
exec /opt/lookalike/Lookalike --cli "$@"
EOF
cat > "$PKG/usr/bin/lookalike-gui" <<'EOF'
#!/bin/sh
# Lookalike's desktop app; folders given as arguments are scanned.
exec /opt/lookalike/Lookalike "$@"
EOF
chmod 0755 "$PKG/usr/bin/lookalike" "$PKG/usr/bin/lookalike-gui"

install -m 0644 packaging/lookalike.desktop "$PKG/usr/share/applications/lookalike.desktop"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$PKG/usr/share/applications/lookalike.desktop"
fi
for png in resources/icons/lookalike-*.png; do
  n=$(basename "$png" .png); n=${n#lookalike-}
  install -D -m 0644 "$png" "$PKG/usr/share/icons/hicolor/${n}x${n}/apps/lookalike.png"
done
install -D -m 0644 resources/icons/lookalike.svg "$PKG/usr/share/icons/hicolor/scalable/apps/lookalike.svg"
install -m 0644 LICENSE "$PKG/usr/share/doc/lookalike/copyright"
install -m 0644 resources/demo/LICENSES.md "$PKG/usr/share/doc/lookalike/demo-photos-LICENSES.md"

# glibc floor: the newest GLIBC_x.y symbol version any bundled ELF file asks for (PyInstaller bundles everything
# else but glibc and the graphics stack).
GLIBC=2.31
if command -v objdump >/dev/null; then
  GLIBC=$(find "$PKG/opt/lookalike" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
    xargs -0 objdump -p 2>/dev/null | python3 -c '
import re, sys
vs = {tuple(map(int, m.groups())) for m in re.finditer(r"\s0x[0-9a-f]+ 0x[0-9a-f]+ \d+ GLIBC_(\d+)\.(\d+)", sys.stdin.read())}
print(".".join(map(str, max(vs))) if vs else "2.31")')
fi

# What Qt loads from the system (PyInstaller leaves these out on purpose): OpenGL/EGL, fontconfig + a font, and
# the xcb platform plugin's libraries; measured in a debootstrap --variant=minbase root.
DEPENDS="libc6 (>= $GLIBC), libgl1, libegl1, libfontconfig1, libfreetype6, fonts-dejavu-core | fonts-liberation2 | fonts-freefont-ttf, \
libx11-6, libx11-xcb1, libxcb1, libxcb-cursor0, libxkbcommon0, libxkbcommon-x11-0, libxcb-icccm4, libxcb-keysyms1, \
libxcb-shape0, libxcb-render-util0, libxcb-image0, libxcb-randr0, libxcb-xfixes0, libxcb-xkb1, libxcb-sync1, \
libxcb-shm0, libxcb-render0, libxcb-xinput0, libdbus-1-3, libglib2.0-0, \
libwayland-client0, libwayland-cursor0, libwayland-egl1"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)

cat > "$PKG/DEBIAN/control" <<EOF
Package: lookalike
Version: $VERSION
Section: graphics
Priority: optional
Architecture: $ARCH
Maintainer: Lookalike maintainers <maintainers@lookalike.invalid>
Installed-Size: $SIZE
Depends: $DEPENDS
Recommends: xdg-utils
Description: find duplicate and near-duplicate photos
 Lookalike scans folders of photos with a neural network (EfficientNet on the
 CPU through ONNX Runtime), groups copies that were resized, recompressed,
 cropped or edited, and moves the extra copies to the trash, with undo.
 .
 This package ships a self-contained build under /opt/lookalike, the
 desktop app (lookalike-gui) and the command-line tool (lookalike).
EOF

DEB=$DIST/lookalike_${VERSION}_${ARCH}.deb
TGZ=$DIST/lookalike-${VERSION}-linux-x86_64.tar.gz
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$PKG" "$DEB" >/dev/null
tar -C "$DIST" --owner=0 --group=0 --transform "s,^Lookalike,lookalike-$VERSION," -czf "$TGZ" Lookalike
echo "$DEB ($(du -h "$DEB" | cut -f1)), $TGZ ($(du -h "$TGZ" | cut -f1)); Depends libc6 >= $GLIBC"
