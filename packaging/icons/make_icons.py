"""Draw Lookalike's app icon once, as SVG and as PNG/ICO/ICNS, from one list of shapes.

Run from the repository root: ``.venv/bin/python packaging/icons/make_icons.py``. Writes ``resources/icons/``:
``lookalike.svg`` (the scalable source, also used for hicolor/scalable), ``lookalike-<N>.png`` for the hicolor
sizes, ``lookalike.ico`` (Windows exe icon) and ``lookalike.icns`` (macOS .app icon). The PNGs are rendered by
Pillow at 4x and downsampled, so no SVG renderer is needed on the build machine.

The picture: two photo cards, one behind the other, on a blue tile: "this photo has a lookalike".
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[2] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
V = 512  # design grid (SVG viewBox)

TILE = ((32, 32, 480, 480), 96, "#2563eb")
# (box, corner radius, fill, opacity)
BACK_CARD = ((88, 84, 336, 300), 22, "#ffffff", 0.55)
FRONT_CARD = ((168, 188, 424, 420), 22, "#ffffff", 1.0)
PHOTO = ((188, 208, 404, 364), 10, "#bfdbfe")  # sky inside the front card
SUN = ((330, 226), 24, "#f59e0b")
HILLS = [
    ([(188, 364), (252, 278), (300, 330), (336, 290), (404, 364)], "#15803d"),
]
BACK_PHOTO = ((106, 102, 318, 236), 8, "#dbeafe")


def svg() -> str:
    def rect(box, r, fill, opacity=1.0):
        x0, y0, x1, y1 = box
        op = f' fill-opacity="{opacity}"' if opacity < 1 else ""
        return (
            f'  <rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="{r}" fill="{fill}"{op}/>\n'
        )

    body = rect(*TILE)
    body += rect(*BACK_CARD)
    body += rect(*BACK_PHOTO, opacity=0.55)
    body += rect(*FRONT_CARD)
    body += rect(*PHOTO)
    (cx, cy), r, fill = SUN
    body += f'  <circle cx="{cx}" cy="{cy}" r="{r}" fill="{fill}"/>\n'
    for pts, fill in HILLS:
        d = " ".join(f"{x},{y}" for x, y in pts)
        body += f'  <polygon points="{d}" fill="{fill}"/>\n'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{V}" height="{V}" viewBox="0 0 {V} {V}">\n'
        "  <title>Lookalike</title>\n" + body + "</svg>\n"
    )


def render(size: int) -> Image.Image:
    scale = size * 4 / V
    big = size * 4

    def s(v):
        return round(v * scale)

    def layer_rect(img, box, r, fill, opacity=1.0):
        over = Image.new("RGBA", img.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(over)
        rgb = tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
        d.rounded_rectangle([s(v) for v in box], radius=s(r), fill=rgb + (round(255 * opacity),))
        return Image.alpha_composite(img, over)

    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    img = layer_rect(img, *TILE)
    img = layer_rect(img, *BACK_CARD)
    img = layer_rect(img, *BACK_PHOTO, opacity=0.55)
    img = layer_rect(img, *FRONT_CARD)
    img = layer_rect(img, *PHOTO)
    d = ImageDraw.Draw(img)
    (cx, cy), r, fill = SUN
    d.ellipse([s(cx - r), s(cy - r), s(cx + r), s(cy + r)], fill=fill)
    for pts, fill in HILLS:
        d.polygon([(s(x), s(y)) for x, y in pts], fill=fill)
    return img.resize((size, size), Image.LANCZOS)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "lookalike.svg").write_text(svg(), encoding="utf-8")
    images = {n: render(n) for n in SIZES}
    for n, im in images.items():
        im.save(OUT / f"lookalike-{n}.png", optimize=True)
    images[256].save(OUT / "lookalike.ico", sizes=[(n, n) for n in (16, 24, 32, 48, 64, 128, 256)])
    images[512].save(OUT / "lookalike.icns")
    print(f"wrote {len(SIZES)} PNGs, SVG, ICO and ICNS to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
