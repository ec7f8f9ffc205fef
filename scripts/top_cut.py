"""Which real faces' ID photos the photo's top cuts, by how much on each size, and what is painted
above the cut (docs/id-photos.md, "A head cut by the photo's top").

    .venv/bin/python scripts/top_cut.py [--save DIR]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and laid out on every size; a face whose layout cuts the
top is listed with the shortfall on each size. With ``--save``, each such face's photos on
``cn-1inch``, ``icao`` and ``us-passport`` are written side by side as the service paints them
and with the top continued as it was before (the hair's last row smeared into the background),
one PNG a face, to look at. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_faces

from faceflow.config import Settings
from faceflow.pipeline.idphoto.background import composite
from faceflow.pipeline.idphoto.compliance.geometry import CUT_FAIL_MM
from faceflow.pipeline.idphoto.layout import Layout, plan_layout
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.specs import list_specs
from faceflow.pipeline.idphoto.warp import warp_matte
from faceflow.runtime.context import load_context

SHOWN = ("cn-1inch", "icao", "us-passport")


def painted(matte: Matte, layout: Layout) -> np.ndarray:
    """The photo on white, at 300 px tall."""
    foreground, alpha = warp_matte(matte, layout)
    white = np.full((layout.height_px, layout.width_px, 3), 255, np.uint8)
    pixels = composite(foreground, alpha, white)
    width = round(pixels.shape[1] * 300 / pixels.shape[0])
    return np.asarray(cv2.resize(pixels, (width, 300), interpolation=cv2.INTER_AREA))


def cuts(layouts: dict[str, Layout], edge: str) -> dict[str, float]:
    """Per size whose layout cuts ``edge`` (top, bottom, left, right), the millimetres the photo
    falls short by there."""
    return {
        key: layout.cut_mm[layout.cut_edges.index(edge)]
        for key, layout in layouts.items()
        if edge in layout.cut_edges
    }


def save_sheet(folder: Path, name: str, tiles: list[np.ndarray]) -> None:
    """``tiles`` (RGB, 300 px tall) side by side, 6 px of black between, as ``folder/name.png``."""
    gap = np.zeros((300, 6, 3), np.uint8)
    row = [part for tile in tiles for part in (tile, gap)]
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(np.hstack(row), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write before/after sheets here")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    specs = list_specs()
    faces = photos = failing = 0
    for real_face in real_faces(TESTDATA, context.models):
        layouts = {spec.key: plan_layout(real_face.matte, real_face.face, spec) for spec in specs}
        cut = cuts(layouts, "top")
        if not cut:
            continue
        faces += 1
        photos += len(cut)
        failing += sum(mm >= CUT_FAIL_MM for mm in cut.values())
        print(f"{real_face.path.name}: " + ", ".join(f"{k} {mm:.2f}" for k, mm in cut.items()))
        if args.save is None:
            continue
        tiles = []
        for key in SHOWN:
            layout = layouts[key]
            before = dataclasses.replace(layout, cut_mm=tuple(0.0 for _ in layout.cut_mm))
            tiles += [painted(real_face.matte, each) for each in (before, layout)]
        save_sheet(args.save, real_face.path.stem, tiles)
    print(
        f"{faces} faces cut at the top on a size or more: {photos} photos, {failing} of them by "
        f"{CUT_FAIL_MM:g} mm or more (the background shows above those)"
    )


if __name__ == "__main__":
    main()
