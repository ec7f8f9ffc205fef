"""What `leftover_backdrop`'s head-notch measure reads: the deepest notch in the cut-out's outline
of the head, in eye distances, on every real face and on objects drawn touching the hair.

    .venv/bin/python scripts/head_notch.py [--save DIR]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out as the service does it and measured, with whether
`leftover_backdrop` warned before the measure (a busy backdrop, or the old backdrop's colour
over 2 % of the hair zone) and whether it warns now. Then on the photos of one person before a
plain wall, as taken and mirrored, an object of each of ``verdict_cases.OBJECT_SHAPES`` is drawn
touching the hair (``verdict_cases.object_at_hair``: a few sizes, at the eyes' height and above
them, dark, brown and green) and the photo cut out again: an object the cut-out keeps (half of
it or more opaque) is what the measure must see. ``--save`` writes each kept one's cut-out over a
light blue wall as PNG, to be looked at. About twenty minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    OBJECT_SHAPES,
    cut_out,
    levelled_faces,
    no_photo,
    object_at_hair,
    real_faces,
)

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.idphoto.backdrop import BackdropKind
from faceflow.pipeline.idphoto.compliance.background import (
    HEAD_NOTCH_WARN,
    LEFTOVER_BACKDROP_WARN,
    check_leftover_backdrop,
    head_notch,
)
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]

# One person before a plain wall (the wall at the photo's left edge runs behind the head on
# both sides, so the mirrored photo takes an object too).
PLAIN_WALLS = (
    "portrait_2.jpg",
    "df_img7.jpg",
    "df_img13.jpg",
    "df_img14.jpg",
    "df_img15.jpg",
    "df_img18.jpg",
    "df_img25.jpg",
    "df_img33.jpg",
)
SIZES = {"disc": (0.3, 0.5, 0.7), "shade": (0.8,), "leaf": (0.5, 0.8), "box": (0.3,)}
HEIGHTS = (0.2, 0.67)
COLOURS = {"dark": (30, 30, 30), "brown": (110, 75, 45), "green": (60, 110, 50)}
# An object counts as kept when this share of it or more is opaque in the cut-out.
KEPT = 0.5


def objects() -> list[tuple[str, float, float, tuple[str, tuple[int, int, int]]]]:
    """Every object drawn: its shape, size, height above the eyes and named colour."""
    return [
        (shape, size, height, colour)
        for shape in OBJECT_SHAPES
        for size in SIZES[shape]
        for height in HEIGHTS
        for colour in COLOURS.items()
    ]


def warned_before(matte: Matte) -> bool:
    """`leftover_backdrop` as it was before the notch: it warned on a busy backdrop, or on a
    plain one with the old backdrop's colour over 2 % of the hair zone."""
    share = matte.leftover_backdrop
    return not (
        matte.backdrop is BackdropKind.PLAIN
        and share is not None
        and share <= LEFTOVER_BACKDROP_WARN
    )


def kept_share(matte: Matte, drawn: NDArray[np.bool_]) -> float:
    """The share of the object's pixels (``drawn``, source pixels) opaque in the cut-out."""
    box = matte.crop_box
    inside = drawn[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)].astype(np.uint8)
    height, width = matte.alpha.shape
    shown = cv2.resize(inside, (width, height), interpolation=cv2.INTER_NEAREST) > 0
    if not shown.any():
        return 0.0
    return float((matte.alpha[shown] >= 0.5).mean())


def over_wall(matte: Matte) -> Image.Image:
    alpha = matte.alpha[..., None]
    wall = np.array([200, 215, 235], np.float32)
    out = matte.foreground.astype(np.float32) * alpha + wall * (1 - alpha)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="a folder for the kept objects' cut-outs (PNG)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models: ModelSet = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()

    real: list[tuple[float, str, bool, bool]] = []
    for real_face in real_faces(TESTDATA, models):
        matte = real_face.matte
        notch = head_notch(matte, real_face.face)
        if notch is None:
            continue
        after = check_leftover_backdrop(matte, real_face.face).status.value != "pass"
        backdrop = matte.backdrop.value if matte.backdrop is not None else "unknown"
        real.append((notch, f"{real_face.path.name} ({backdrop})", warned_before(matte), after))
    real.sort(reverse=True)
    print(
        f"real faces: {len(real)}, notch {real[-1][0]:.2f}–{real[0][0]:.2f} eye distances, "
        f"median {statistics.median(value for value, *_ in real):.2f}; over "
        f"{HEAD_NOTCH_WARN:g}: {sum(value > HEAD_NOTCH_WARN for value, *_ in real)}"
    )
    print("  deepest: " + ", ".join(f"{v:.2f} {n}" for v, n, *_ in real[:10]))
    new = [name for _, name, before, after in real if after and not before]
    gone = [name for _, name, before, after in real if before and not after]
    print(f"  leftover_backdrop warns newly on: {', '.join(new) or 'none'}")
    print(f"  no longer on: {', '.join(gone) or 'none'}")

    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    tally: dict[str, list[int]] = {shape: [0, 0, 0] for shape in OBJECT_SHAPES}
    for name in PLAIN_WALLS:
        path = TESTDATA / name
        if not path.exists():
            path = TESTDATA.parent / "devset" / name
        taken = decode_image(path.read_bytes(), limits).rgb
        for mirrored in (False, True):
            rgb = np.ascontiguousarray(taken[:, ::-1]) if mirrored else taken
            found = levelled_faces(rgb, models)
            if len(found) != 1:
                continue
            for shape, size, height, (colour_name, colour) in objects():
                edited = object_at_hair(shape, colour, size, height)(rgb, found[0], no_photo)
                drawn = np.any(edited != rgb, axis=2)
                again = levelled_faces(edited, models)
                if len(again) != 1:
                    continue
                cut = cut_out(edited, again[0], models.segmenter)
                if cut is None:
                    continue
                matte = cut
                tally[shape][0] += 1
                kept = kept_share(matte, drawn)
                if kept < KEPT:
                    continue
                notch = head_notch(matte, again[0]) or 0.0
                seen = check_leftover_backdrop(matte, again[0]).limit.of == "head_notch"
                tally[shape][1] += 1
                tally[shape][2] += seen
                label = (
                    f"{name}{' mirrored' if mirrored else ''} {colour_name} {shape} {size:g}"
                    f" at {height:g}"
                )
                print(
                    f"  {label:48s} kept {kept:.2f} notch {notch:.2f}"
                    f" {'seen' if seen else 'NOT SEEN'}",
                    flush=True,
                )
                if args.save:
                    over_wall(matte).save(args.save / f"{label.replace(' ', '_')}.png")
    for shape, (drawn_count, kept_count, seen_count) in tally.items():
        print(f"{shape}: drawn {drawn_count}, kept by the cut-out {kept_count}, seen {seen_count}")
    kept_all = sum(kept for _, kept, _ in tally.values())
    seen_all = sum(seen for _, _, seen in tally.values())
    print(f"objects kept: {kept_all}, seen {seen_all}")


if __name__ == "__main__":
    main()
