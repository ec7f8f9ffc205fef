"""Rejection causes a counter refuses, made as edits of every real one-person photo of the test
and dev-set photos, and how many of each come out with a report that passes.

    .venv/bin/python scripts/rejection_sweep.py [--only NAME] [--limit N]

Every photo of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) with exactly one face, its eyes 40 px or more apart, whose ICAO
photo as taken does not fail, is edited by each of ``EDITS`` (placed by the face found on the
original), its face found again and made into an ICAO photo as the service makes it. Printed:
each edit's count of photos whose report passes, warns or fails, how many of them are unseen
(the report says nothing the photo's report as taken does not: no check newly warns or fails,
none worsens), which those are, and the checks that newly did not pass. ``--part I/N`` runs
every N-th edit from the I-th (to spread the edits over processes). ``--highlights`` prints
instead, for every real face with its eyes 40 px or more apart, the central face's mean luma and
its brightest 2 % (``exposure``'s readings) as taken and at half the light.
About a second and a half a photo and edit.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    Case,
    Edit,
    Rgb,
    blur,
    brim_shadow,
    colour_cast,
    enlarged,
    exposure,
    eye_glare,
    hair_lock,
    hand_on_face,
    jpeg,
    judge,
    open_mouth,
    real_faces,
    real_photos,
    red_eye,
    rotate,
    shake,
)

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.idphoto.compliance import ComplianceReport
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px, face_region, pixel_luma
from faceflow.runtime.context import load_context

EDITS: dict[str, Edit] = {
    "over-exposed, × 1.5": exposure(1.5),
    "under-exposed, × 0.5": exposure(0.5),
    "a magenta cast": colour_cast(1.12, 0.85, 1.1),
    "a green cast": colour_cast(0.9, 1.12, 0.85),
    "out of focus, σ 3 % of the eye distance": blur(0.03),
    "shaken sideways, 6 %": shake(0.06),
    "saved as JPEG 12": jpeg(12),
    "enlarged from a quarter": enlarged(4.0),
    "rolled 12°": rotate(12.0),
    "rolled 18°": rotate(18.0),
    "mouth open, 0.1": open_mouth(0.1),
    "glare on glasses, 0.1 wide": eye_glare(0.1),
    "hair over half an eye": hair_lock(0.5),
    "a cap's brim shadow, 45 %": brim_shadow(0.45),
    "red eyes, 0.035": red_eye(0.035),
    "a hand against the cheek": hand_on_face("cheek", "left"),
}


RANK = {"pass": 0, "warn": 1, "fail": 2}


def highlights(models: ModelSet) -> None:
    """``exposure``'s mean and brightest 2 % of every real face, as taken and at half light."""
    for real in real_faces(TESTDATA, models):
        if eye_distance_px(real.face) < 40:
            continue
        region = face_region(real.matte, real.face)
        readings = []
        for gain in (1.0, 0.5):
            luma = pixel_luma(np.clip(region.astype(np.float32) * gain, 0, 255).astype(np.uint8))
            readings.append(f"{luma.mean():.0f} {np.percentile(luma, 98):.0f}")
        print(real.path.stem, " | ".join(readings), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one edit of EDITS, by name")
    parser.add_argument("--limit", type=int, help="the first N photos only")
    parser.add_argument("--part", default="1/1", help="I/N: every N-th edit from the I-th")
    parser.add_argument("--highlights", action="store_true", help="exposure's readings only")
    parser.add_argument("--pick", help="the edits of these indices into EDITS, e.g. 11,12")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    models = context.models
    limits = LimitSettings()
    photos: dict[str, Rgb] = {}
    if args.highlights:
        highlights(models)
        return

    def photo(name: str) -> Rgb:
        if name not in photos:
            photos[name] = decode_image((TESTDATA / name).read_bytes(), limits).rgb
        return photos[name]

    part, parts = (int(n) for n in args.part.split("/"))
    names: list[str] = []
    taken: dict[str, dict[str, int]] = {}
    for path in real_photos(TESTDATA):
        name = (
            str(path.relative_to(TESTDATA))
            if path.is_relative_to(TESTDATA)
            else ("../devset/" + path.name)
        )
        report = judge(Case("as taken", name, "icao", "", ""), photo, models, models.segmenter)
        if not isinstance(report, ComplianceReport) or report.status == "fail":
            continue
        names.append(name)
        taken[name] = {check.name: RANK[check.status] for check in report.checks}
        if args.limit and len(names) >= args.limit:
            break
    print(f"{len(names)} photos of one person whose ICAO photo as taken does not fail")
    for index, (label, edit) in enumerate(EDITS.items()):
        picked = args.pick is None or str(index) in args.pick.split(",")
        if index % parts != part - 1 or (args.only and label != args.only) or not picked:
            continue
        counts: collections.Counter[str] = collections.Counter()
        missed: list[str] = []
        checks: collections.Counter[str] = collections.Counter()
        for name in names:
            report = judge(Case(label, name, "icao", "", "", edit), photo, models, models.segmenter)
            if isinstance(report, str):
                counts[report] += 1
                continue
            counts[report.status] += 1
            new = [
                check.name
                for check in report.checks
                if RANK[check.status] > taken[name].get(check.name, 0)
            ]
            checks.update(new)
            if not new:
                missed.append(Path(name).stem)
        print(
            f"{label}: pass {counts['pass']}, warn {counts['warn']}, fail {counts['fail']}"
            + "".join(f", {k} {v}" for k, v in counts.items() if k not in {"pass", "warn", "fail"})
            + f"; unseen {len(missed)}: {' '.join(missed)}; newly not passed:"
            + f" {dict(checks.most_common(6))}",
            flush=True,
        )


if __name__ == "__main__":
    main()
