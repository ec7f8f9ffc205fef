"""Contact sheets of finished ID photos, to look at many at once with what the report said.

    faceflow id-photo photos/ -o out/icao --spec icao --format png
    .venv/bin/python scripts/contact_sheets.py out/icao --to sheets/icao [--per 12] [--only a,b]

Every photo ``faceflow id-photo`` wrote into the folder (``<name>.<size>.png`` or ``.jpg``, print
sheets passed over) is laid on a grey page at one height, with its name and the report's status
under it in the status's colour and its checks that did not pass, the worse first. Pages of
``--per`` photos are written as ``<to>-01.png``, ``<to>-02.png``, ... The numbers say what the
checks measured; this is for the eye, as a counter clerk sees the photos (a halo of the old
background, a shoulder cut by the matte, a strip at an edge), and for zooming on the ones that
look wrong (docs/id-photos.md, "A studio review by eye").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

RANK = {"pass": 0, "warn": 1, "fail": 2}
INK = {"pass": (60, 200, 60), "warn": (255, 170, 0), "fail": (255, 70, 70)}
PAGE = (90, 90, 90)
LABEL_PX = 40
GAP_PX = 10


@dataclass(frozen=True, slots=True)
class Tile:
    name: str
    image: Image.Image
    status: str
    worst: str


def photos_in(folder: Path, only: set[str]) -> list[Path]:
    """The ID photos the CLI wrote into ``folder`` (each has a report beside it), by name."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".png", ".jpg") or ".sheet-" in path.name:
            continue
        if only and path.name.split(".")[0] not in only:
            continue
        if report_of(path).exists():
            found.append(path)
    return found


def report_of(photo: Path) -> Path:
    return photo.with_name(photo.stem + ".report.json")


def tile(photo: Path, height: int) -> Tile:
    """The photo at ``height`` px with its status and its checks that did not pass."""
    report = json.loads(report_of(photo).read_text())["report"]
    image = Image.open(photo).convert("RGB")
    image = image.resize(
        (round(image.width * height / image.height), height), Image.Resampling.LANCZOS
    )
    failing = sorted(
        (check for check in report["checks"] if check["status"] != "pass"),
        key=lambda check: -RANK[check["status"]],
    )
    worst = ", ".join(f"{check['name']}:{check['status'][0]}" for check in failing[:3])
    return Tile(photo.name.split(".")[0], image, report["status"], worst)


def page(tiles: list[Tile], columns: int, height: int) -> Image.Image:
    """One grey page with ``tiles`` in rows of ``columns``, each labelled under it."""
    width = max(t.image.width for t in tiles) + GAP_PX
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (width * columns, (height + LABEL_PX) * rows), PAGE)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, t in enumerate(tiles):
        x = (index % columns) * width + GAP_PX // 2
        y = (index // columns) * (height + LABEL_PX)
        sheet.paste(t.image, (x, y))
        draw.text((x, y + height + 2), f"{t.name} {t.status}", fill=INK[t.status], font=font)
        draw.text((x, y + height + 18), t.worst[:64], fill=(255, 255, 255), font=font)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder faceflow id-photo wrote into")
    parser.add_argument("--to", type=Path, required=True, help="prefix of the pages written")
    parser.add_argument("--per", type=int, default=12, help="photos a page")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--height", type=int, default=420, help="each photo's height in px")
    parser.add_argument("--only", default="", help="comma-separated source names to keep")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    photos = photos_in(args.folder, only)
    for start in range(0, len(photos), args.per):
        tiles = [tile(photo, args.height) for photo in photos[start : start + args.per]]
        out = args.to.with_name(f"{args.to.name}-{start // args.per + 1:02d}.png")
        page(tiles, args.columns, args.height).save(out)
        print(out)


if __name__ == "__main__":
    main()
