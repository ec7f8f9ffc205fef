"""Which real faces' ID photos the photo's bottom cuts, by how much on each size, and how the body
is painted below the cut (docs/id-photos.md, "A body cut by the photo's bottom").

    .venv/bin/python scripts/bottom_cut.py [--save DIR]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and laid out on every size; a face whose layout cuts the
bottom is listed with the shortfall on each size, and its reports on those sizes (as JPEG on
white: each size's status and ``file_compression``'s, the one check that reads the file). With
``--save``, each such face's photos on every size that cuts it are written side by side on white,
300 px tall, one PNG a face, to look at (run it again with another version's ``PYTHONPATH`` to
compare). A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_faces
from top_cut import cuts, painted, save_sheet

from faceflow.config import Settings
from faceflow.pipeline.idphoto.layout import plan_layout
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec, list_specs
from faceflow.runtime.context import load_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write each face's cut photos here")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    specs = list_specs()
    faces = photos = 0
    for number, real_face in enumerate(real_faces(TESTDATA, context.models)):
        layouts = {spec.key: plan_layout(real_face.matte, real_face.face, spec) for spec in specs}
        cut = cuts(layouts, "bottom")
        if not cut:
            continue
        faces += 1
        photos += len(cut)
        name = f"{real_face.path.stem}_{number}"
        print(f"{name}: " + ", ".join(f"{k} {mm:.2f}" for k, mm in cut.items()), flush=True)
        reports = []
        for key in cut:
            options = IdPhotoOptions(get_spec(key), parse_background("white"))
            report = render_id_photo(real_face.matte, real_face.face, options).report
            compression = report.check("file_compression")
            reports.append(f"{key} {report.status.value}/{compression.status.value}")
        print("  reports: " + ", ".join(reports), flush=True)
        if args.save is None:
            continue
        save_sheet(args.save, name, [painted(real_face.matte, layouts[key]) for key in cut])
    print(f"{faces} faces cut at the bottom on a size or more: {photos} photos")


if __name__ == "__main__":
    main()
