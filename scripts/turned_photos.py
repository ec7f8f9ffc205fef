"""ID photos from photo files saved turned by 90°, 180° and 270° (no orientation tag), against
the upright file's (docs/id-photos.md, "A photo saved on its side").

    .venv/bin/python scripts/turned_photos.py [--save DIR] [--only NAME ...]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) that the cut-out keeps: the decoded photo is saved as PNG upright and
turned each way, each upload goes through the service's matte task with the face's number in
that upload, and its photos on ``cn-1inch``, ``icao`` and ``us-passport`` are compared with the
upright upload's: the report's status and each check's, and the framing (the shift that best
lines the two photos up, by phase correlation, and the mean difference of their pixels). With
``--save``, each face's upright and turned photos on ``icao`` side by side, one PNG a face.
About ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.errors import NoSubject
from faceflow.imaging.encode import encode_image
from faceflow.imaging.formats import OutputFormat
from faceflow.imaging.ingest import decode_image
from faceflow.models.detector import YuNetDetector
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance import assess
from faceflow.pipeline.idphoto.matte import matte_from_bytes
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_pixels
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context
from faceflow.runtime.idphoto_tasks import MATTE_DECODE_PX, MatteRequest, matte_task

SIZES = ("cn-1inch", "icao", "us-passport")


def numbers(rgb: np.ndarray, detector: YuNetDetector, turns: int) -> list[tuple[float, float]]:
    """Each face's centre, in the order of its number (left to right) in ``np.rot90(rgb,
    turns)``, turned back to ``rgb``'s pixels."""
    turned = np.ascontiguousarray(np.rot90(rgb, turns))
    found = sorted(
        detect_faces(turned, detector, DetectOptions()),
        key=lambda face: face.box.x1,
    )
    height, width = turned.shape[:2]
    centres = []
    for face in found:
        x, y = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
        w, h = width, height
        for _ in range((4 - turns) % 4):  # one counter-clockwise quarter turn at a time
            x, y, w, h = y, w - x, h, w
        centres.append((x, y))
    return centres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--start", help="begin at this photo (resume a run)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    white = parse_background("white")
    compared = same_status = same_checks = 0
    shifts: list[float] = []
    diffs: list[float] = []
    started = args.start is None
    for path in real_photos(TESTDATA):
        if args.only and path.name not in args.only:
            continue
        started = started or path.name == args.start
        if not started:
            continue
        rgb = decode_image(path.read_bytes(), LimitSettings()).rgb
        if max(rgb.shape[:2]) > MATTE_DECODE_PX:
            # As the matte task decodes it: a PNG of the full photo can pass the upload limit.
            shrink = MATTE_DECODE_PX / max(rgb.shape[:2])
            size = (round(rgb.shape[1] * shrink), round(rgb.shape[0] * shrink))
            rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
        upright = numbers(rgb, context.models.detector, 0)
        detector = context.models.detector
        turned_centres = {turns: numbers(rgb, detector, turns) for turns in (1, 2, 3)}
        for number, centre in enumerate(upright, start=1):
            photos: dict[int, dict[str, tuple[np.ndarray, dict[str, str], str]]] = {}
            for turns in range(4):
                if turns:
                    centres = turned_centres[turns]
                    if not centres:
                        continue
                    far = [np.hypot(c[0] - centre[0], c[1] - centre[1]) for c in centres]
                    if min(far) > 10:
                        continue
                    local = int(np.argmin(far)) + 1
                else:
                    local = number
                upload = encode_image(np.ascontiguousarray(np.rot90(rgb, turns)), OutputFormat.PNG)
                try:
                    output = matte_task(context, MatteRequest(upload, local))
                except NoSubject:
                    break
                matte = matte_from_bytes(output.body)
                photos[turns] = {}
                for key in SIZES:
                    options = IdPhotoOptions(get_spec(key), white)
                    rendered = render_pixels(matte, matte.face, options)
                    report = assess(rendered.layout, matte, matte.face, white)
                    checks = {check.name: check.status.value for check in report.checks}
                    photos[turns][key] = (rendered.pixels, checks, report.status.value)
            if 0 not in photos:
                continue
            line = []
            for turns in (1, 2, 3):
                if turns not in photos:
                    line.append(f"{turns * 90}: not found")
                    continue
                parts = []
                for key in SIZES:
                    base, checks0, status0 = photos[0][key]
                    other, checks, status = photos[turns][key]
                    grey0 = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.float64)
                    grey = cv2.cvtColor(other, cv2.COLOR_RGB2GRAY).astype(np.float64)
                    (dx, dy), _ = cv2.phaseCorrelate(grey0, grey)
                    shift = float(np.hypot(dx, dy))
                    diff = float(np.abs(grey0 - grey).mean())
                    compared += 1
                    same_status += status == status0
                    same_checks += checks == checks0
                    shifts.append(shift)
                    diffs.append(diff)
                    changed = [n for n in checks if checks[n] != checks0.get(n)]
                    parts.append(
                        f"{key} {status0}->{status} shift {shift:.2f} diff {diff:.1f}"
                        + (
                            f" [{', '.join(f'{n} {checks0[n]}->{checks[n]}' for n in changed)}]"
                            if changed
                            else ""
                        )
                    )
                line.append(f"{turns * 90}: " + "; ".join(parts))
            print(f"{path.name} #{number}: " + " | ".join(line), flush=True)
            if args.save is not None:
                tiles = [photos[t]["icao"][0] for t in sorted(photos)]
                args.save.mkdir(parents=True, exist_ok=True)
                sheet = cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(args.save / f"{path.stem}_{number}.png"), sheet)
    if compared:
        print(
            f"{compared} turned photos: status as upright {same_status}, every check as upright "
            f"{same_checks}; shift median {np.median(shifts):.2f} px, max {max(shifts):.2f}; "
            f"mean pixel difference median {np.median(diffs):.2f}, max {max(diffs):.2f}"
        )


if __name__ == "__main__":
    main()
