#!/usr/bin/env python3
"""Build ``resources/demo/``: a small photo library with known duplicates.

The photos come from Debian packages (GPL/LGPL/CC-BY-SA wallpapers).  To
reproduce the committed demo folder exactly::

    apt-get download mate-backgrounds plasma-workspace-wallpapers
    mkdir -p /tmp/x
    for d in *.deb; do dpkg-deb -x "$d" /tmp/x; done
    python tools/make_demo.py --src /tmp/x --out resources/demo

Package versions used for the committed files: mate-backgrounds 1.26.0-1,
plasma-workspace-wallpapers 4:5.27.5-2 (Debian 12 "bookworm").

Output layout (a user's photo library):

* ``Camera/``    -- the 16 originals, downscaled to a longest side of 1600 px
* ``Backup/``    -- exact byte copies
* ``Edited/``    -- resized / cropped / flipped / retouched / captioned copies
* ``Downloads/`` -- recompressed, resized and PNG copies

``MANIFEST.json`` lists the expected duplicate groups and the distinct photos;
``LICENSES.md`` gives source package, original path, author and licence of
every file.  Only Pillow is needed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

LONG_SIDE = 1600
QUALITY = 88

MATE = "mate-backgrounds"
MATE_VER = "1.26.0-1"
MATE_LIC = "GPL-2+"
PLASMA = "plasma-workspace-wallpapers"
PLASMA_VER = "4:5.27.5-2"
# debian/copyright of plasma-workspace-wallpapers says "Files: * / Copyright:
# 2014 KDE Visual Design Group / License: GPL-2+"; each wallpaper's
# metadata.json names the photographer and a licence (LGPLv3 for these).
PLASMA_LIC = "GPL-2+ (debian/copyright); LGPL-3 (upstream metadata.json)"

# name -> (package, path inside package, author, licence)
SOURCES: dict[str, tuple[str, str, str, str]] = {
    "water_drop": (MATE, "usr/share/backgrounds/mate/nature/Aqua.jpg", "Charles Barbin (2008)", MATE_LIC),
    "dune_grass": (
        MATE,
        "usr/share/backgrounds/mate/nature/Dune.jpg",
        "Marco Cogoni (2007), Hylke Bons (2008)",
        MATE_LIC,
    ),
    "orange_flower": (
        MATE,
        "usr/share/backgrounds/mate/nature/FreshFlower.jpg",
        "Jens Ansorg (2005)",
        MATE_LIC,
    ),
    "red_marigold": (MATE, "usr/share/backgrounds/mate/nature/Garden.jpg", "Charles Barbin (2008)", MATE_LIC),
    "ladybird": (MATE, "usr/share/backgrounds/mate/nature/LadyBird.jpg", "Charles Barbin (2008)", MATE_LIC),
    "rain_drops": (
        MATE,
        "usr/share/backgrounds/mate/nature/RainDrops.jpg",
        '"blackcombwhistler07" (2008)',
        MATE_LIC,
    ),
    "storm_clouds": (MATE, "usr/share/backgrounds/mate/nature/Storm.jpg", "Sergey Nazarov (2008)", MATE_LIC),
    "dandelion_seeds": (
        MATE,
        "usr/share/backgrounds/mate/nature/TwoWings.jpg",
        "Charles Barbin (2008), Hylke Bons (2008)",
        MATE_LIC,
    ),
    "yellow_flower": (
        MATE,
        "usr/share/backgrounds/mate/nature/YellowFlower.jpg",
        "Charles Barbin (2008)",
        MATE_LIC,
    ),
    "fallen_leaves": (
        PLASMA,
        "usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
        "Martin Klapetek",
        PLASMA_LIC,
    ),
    "forest_path": (
        PLASMA,
        "usr/share/wallpapers/Path/contents/images/2560x1600.jpg",
        "Risto Saukonpää",
        PLASMA_LIC,
    ),
    "misty_lake": (
        PLASMA,
        "usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg",
        "Risto Saukonpää",
        PLASMA_LIC,
    ),
    "rowing_boats": (
        PLASMA,
        "usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg",
        "Ian Hex",
        PLASMA_LIC,
    ),
    "colorful_cups": (
        PLASMA,
        "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
        "Dmitri Popov",
        PLASMA_LIC,
    ),
    "wooden_pier": (
        PLASMA,
        "usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg",
        "Risto Saukonpää",
        PLASMA_LIC,
    ),
    "kite_sky": (
        PLASMA,
        "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
        "Risto Saukonpää",
        PLASMA_LIC,
    ),
}

# name -> list of (relative output path, edit kind)
COPIES: dict[str, list[tuple[str, str]]] = {
    "rowing_boats": [
        ("Backup/rowing_boats.jpg", "exact"),
        ("Edited/rowing_boats_small.jpg", "half"),
        ("Downloads/rowing_boats_q40.jpg", "q40"),
    ],
    "forest_path": [("Backup/forest_path.jpg", "exact"), ("Edited/forest_path_crop.jpg", "crop85")],
    "water_drop": [("Backup/IMG_0412.jpg", "exact"), ("Edited/water_drop_bright.jpg", "bright")],
    "ladybird": [("Edited/ladybird_flipped.jpg", "flip"), ("Downloads/ladybird.png", "png_half")],
    "red_marigold": [("Edited/red_marigold_bright.jpg", "bright"), ("Downloads/red_marigold_q40.jpg", "q40")],
    "misty_lake": [("Edited/misty_lake_caption.jpg", "caption"), ("Downloads/misty_lake_small.jpg", "half")],
    "kite_sky": [("Edited/kite_sky_rotated.jpg", "rot90"), ("Downloads/kite_sky_small.jpg", "half")],
    "dune_grass": [("Downloads/dune_grass_q40.jpg", "q40"), ("Edited/dune_grass_crop.jpg", "crop85")],
    "wooden_pier": [("Edited/wooden_pier_flipped.jpg", "flip")],
    "colorful_cups": [
        ("Downloads/colorful_cups_small.jpg", "half"),
        ("Edited/colorful_cups_caption.jpg", "caption"),
    ],
}

EDIT_TEXT = {
    "original": "downscaled to longest side 1600 px, JPEG quality 88",
    "exact": "exact byte copy of the Camera/ original",
    "half": "resized to 50% (Lanczos), JPEG quality 88",
    "q40": "re-encoded as JPEG quality 40",
    "crop85": "centre crop to 85% of width and height, JPEG quality 88",
    "flip": "mirrored horizontally, JPEG quality 88",
    "bright": "brightness x1.08 and contrast x1.10, JPEG quality 88",
    "png_half": "resized to 50% and saved as PNG",
    "caption": "small white text caption in the lower-left corner, JPEG quality 88",
    "rot90": "rotated 90 degrees (counter-clockwise) in the pixels, JPEG quality 88",
}

CAPTIONS = {"misty_lake": "Lake, early morning", "colorful_cups": "Party 2019"}


def save_jpeg(im: Image.Image, path: Path, quality: int = QUALITY, exif: Image.Exif | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"exif": exif} if exif is not None else {}
    im.convert("RGB").save(path, "JPEG", quality=quality, optimize=True, **extra)


def camera_exif(name: str) -> Image.Exif:
    """The capture record a camera writes (DateTimeOriginal), which edits below do not carry: as in a real
    library, the camera's file is the one the best-copy rule (core.grouping.rank_copies) keeps."""
    exif = Image.Exif()
    minute = sum(map(ord, name)) % 60
    exif.get_ifd(0x8769)[36867] = f"2019:07:14 10:{minute:02d}:00"  # DateTimeOriginal
    return exif


def load_original(src_root: Path, rel: str) -> Image.Image:
    im = Image.open(src_root / rel)
    im = ImageOps.exif_transpose(im).convert("RGB")
    scale = LONG_SIDE / max(im.size)
    if scale < 1:
        size = (round(im.width * scale), round(im.height * scale))
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im


def apply_edit(kind: str, im: Image.Image, name: str) -> Image.Image:
    if kind in ("half", "png_half"):
        return im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    if kind == "q40":
        return im
    if kind == "crop85":
        w, h = round(im.width * 0.85), round(im.height * 0.85)
        left, top = (im.width - w) // 2, (im.height - h) // 2
        return im.crop((left, top, left + w, top + h))
    if kind == "flip":
        return ImageOps.mirror(im)
    if kind == "bright":
        return ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.08)).enhance(1.10)
    if kind == "rot90":
        return im.transpose(Image.Transpose.ROTATE_90)
    if kind == "caption":
        out = im.copy()
        draw = ImageDraw.Draw(out)
        font = ImageFont.load_default(size=max(16, im.height // 28))
        x, y = im.width // 40, im.height - im.height // 12
        draw.text((x + 2, y + 2), CAPTIONS[name], font=font, fill=(0, 0, 0))
        draw.text((x, y), CAPTIONS[name], font=font, fill=(255, 255, 255))
        return out
    raise ValueError(kind)


def build(src_root: Path, out: Path) -> dict:
    for sub in ("Camera", "Backup", "Edited", "Downloads"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    groups: list[list[str]] = []
    distinct: list[str] = []
    edits: dict[str, str] = {}
    lic_rows: list[tuple[str, str, str, str, str, str]] = []
    for name, (pkg, rel, author, lic) in SOURCES.items():
        orig_rel = f"Camera/{name}.jpg"
        orig_path = out / orig_rel
        im = load_original(src_root, rel)
        save_jpeg(im, orig_path, exif=camera_exif(name))
        edits[orig_rel] = "original"
        lic_rows.append((orig_rel, pkg, rel, author, lic, EDIT_TEXT["original"]))
        members = [orig_rel]
        for copy_rel, kind in COPIES.get(name, []):
            dst = out / copy_rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if kind == "exact":
                shutil.copyfile(orig_path, dst)
            elif kind == "q40":
                save_jpeg(Image.open(orig_path), dst, quality=40)
            elif kind == "png_half":
                apply_edit(kind, im, name).save(dst, "PNG", optimize=True)
            else:
                save_jpeg(apply_edit(kind, im, name), dst)
            members.append(copy_rel)
            edits[copy_rel] = kind
            lic_rows.append((copy_rel, pkg, rel, author, lic, EDIT_TEXT[kind]))
        if len(members) > 1:
            groups.append(members)
        else:
            distinct.append(orig_rel)

    manifest = {
        "description": "Expected duplicate groups of the bundled demo library "
        "(paths relative to resources/demo). Generated by tools/make_demo.py.",
        "groups": groups,
        "distinct": distinct,
        "edits": {k: EDIT_TEXT[v] if v != "original" else "original" for k, v in edits.items()},
    }
    (out / "MANIFEST.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_licenses(out, lic_rows)
    return manifest


def write_licenses(out: Path, rows) -> None:
    lines = [
        "# Demo photos: sources and licences",
        "",
        "Every file in this folder is derived from a wallpaper photo shipped in a Debian 12",
        "(bookworm) package. The originals were downscaled (and some copies edited) by",
        "`tools/make_demo.py`; the table lists the edit applied to each file.",
        "",
        f"* `{MATE}` {MATE_VER} -- `/usr/share/doc/{MATE}/copyright` lists, per file, the",
        "  copyright holders below and `License: GPL-2+` (GNU General Public License,",
        "  version 2 or later).",
        f"* `{PLASMA}` {PLASMA_VER} -- `/usr/share/doc/{PLASMA}/copyright` has a single",
        "  stanza `Files: *`, `Copyright: 2014 KDE Visual Design Group`, `License: GPL-2+`.",
        "  Each wallpaper's upstream `metadata.json` names the photographer (listed as author",
        '  below) and `"License": "LGPLv3"`. Both are copyleft licences permitting',
        "  redistribution of modified copies; these derived files stay under those licences.",
        "",
        "Licence texts: GPL-2 at `/usr/share/common-licenses/GPL-2` on Debian systems or",
        "<https://www.gnu.org/licenses/old-licenses/gpl-2.0.html>; LGPL-3 at",
        "<https://www.gnu.org/licenses/lgpl-3.0.html>. The unmodified sources are available",
        "from the Debian archive (`apt-get source mate-backgrounds plasma-workspace-wallpapers`).",
        "",
        "| File | Debian package | Original path in package | Author (copyright) | Licence | Edit |",
        "|---|---|---|---|---|---|",
    ]
    for f, pkg, rel, author, lic, edit in rows:
        lines.append(f"| `{f}` | {pkg} | `/{rel}` | {author} | {lic} | {edit} |")
    lines.append("")
    lines.append("`MANIFEST.json` and this file were written by `tools/make_demo.py`.")
    (out / "LICENSES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--src",
        type=Path,
        required=True,
        help="directory the .deb packages were extracted into (dpkg-deb -x)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "resources" / "demo")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    m = build(args.src, args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        f"{len(m['groups'])} groups, {len(m['distinct'])} distinct, "
        f"{sum(1 for p in args.out.rglob('*') if p.suffix in ('.jpg', '.png'))} images, "
        f"{total / 1e6:.2f} MB in {args.out}"
    )


if __name__ == "__main__":
    main()
