"""What the image-quality checks measure on real photos and on spoiled ones: the figures behind the
thresholds of `yaw` (the head's turn), `colour` (and its toned photos), `resolution`'s enlarged
sources, `skin_colour`, `blockiness`, `banding` (posterised tones), `even_lighting`, `focus`,
`motion_blur`, `eye_glare`, `red_eye`, `eyes_open`, `eyes_visible`'s covered eye, `tinted_lenses`,
`forehead_visible` and `eye_shadow`, the mouth's (teeth, the lips apart), the glasses', and the
clothes' against each preset background (faceflow/pipeline/idphoto/compliance/, the check table in
docs/id-photos.md).

    .venv/bin/python scripts/compliance_ranges.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and made an ICAO photo; the range of each check's value
is printed, then the value on portrait_2 spoiled as the verdict set spoils it (blurred by a share
of the eye distance, grain of σ grey levels). Faces the cut-out leaves out (``no_subject``) are
counted apart. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    GREEN_LIGHT,
    MASK_COLOURS,
    TUNGSTEN_LIGHT,
    Case,
    Edit,
    black_and_white,
    blur,
    blurred_with_grain,
    brim_shadow,
    clear_glasses,
    closed_eyes,
    colour_cast,
    contrast,
    double_exposure,
    enlarged,
    exposure,
    eye_glare,
    face_mask,
    grain,
    hair_lock,
    jpeg,
    judge,
    knit_hat,
    mosaic,
    no_photo,
    open_mouth,
    posterised,
    real_photos,
    red_eye,
    shake,
    side_shadow,
    then,
    tinted_glasses,
    tone_curve,
    toned,
)

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance import ComplianceReport
from faceflow.pipeline.idphoto.compliance.background import clothing_blend
from faceflow.pipeline.idphoto.compliance.colour import TONE_PASS, tone_spread
from faceflow.pipeline.idphoto.compliance.quality import (
    BANDING_FAIL,
    BANDING_PASS,
    DOUBLE_IMAGE_WARN,
    banding,
    double_image,
    enlargement,
)
from faceflow.pipeline.idphoto.compliance.regions import face_region
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import PRESET_COLOURS, parse_background
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

# face_occluded's note gives the spread of the mouth's colour (Lab a*, 90th minus 10th percentile).
MOUTH_SPREAD = re.compile(r"colour spread (\d+)")
# glasses' note gives the darkest row between the eyes over the cheeks' lightness.
GLASSES_BRIDGE = re.compile(r"darkest row between the eyes ([\d.]+)")
# eyes_open's note gives how dark the iris in the eyes' middles stays (the lower eye's).
EYE_IRIS = re.compile(r"iris ([\d.]+)")
# mouth_closed's note gives how far apart the lips are (the dark gap between them).
LIPS_GAP = re.compile(r"the lips ([\d.]+) eye distances apart")
# motion_blur's note gives how much less the most smeared direction decorrelates than across it.
SHAKE = re.compile(
    r"decorrelates ([\d.]+)× less than across it \(real photos up to 1.5; ([-+\d.]+)"
)
CHECKS = (
    "yaw",
    "colour",
    "skin_colour",
    "blockiness",
    "banding",
    "even_lighting",
    "focus",
    "motion_blur",
    "noise",
    "eye_glare",
    "red_eye",
    "mouth_closed",
    "eyes_open",
    "tinted_lenses",
    "forehead_visible",
    "eye_shadow",
    "resolution",
)
# What the tone and enlargement measures read on each real face's central face, as taken and
# spoiled there (the edits take the face region for the photo).
REGION_EDITS: tuple[tuple[str, Edit | None], ...] = (
    ("as taken", None),
    ("saved as JPEG 30", jpeg(30)),
    ("at 30 % of its light", exposure(0.3)),
    ("toned sepia", toned(1.0)),
    ("toned sepia, JPEG 50", then(toned(1.0), jpeg(50))),
    ("toned sepia, JPEG 30", then(toned(1.0), jpeg(30))),
    ("sepia 80 %", toned(0.8)),
    ("sepia 60 %", toned(0.6)),
    ("enlarged from a half", enlarged(2.0)),
    ("enlarged from a third", enlarged(3.0)),
    ("enlarged from a quarter", enlarged(4.0)),
)
# What the banding measure reads on each real face's central face with the source's crop spoiled
# there, then shrunk to the matte's size as the cut-out shrinks it (a posterised photo's bands go
# through the same resampling; each edit ends with a JPEG 90 save).
BANDING_EDITS: tuple[tuple[str, Edit | None], ...] = (
    ("as taken", None),
    *((f"posterised, {levels} tones", posterised(levels)) for levels in (4, 6, 8, 12, 16)),
    ("tone curve 0.8", tone_curve(0.8)),
    ("tone curve 1.25", tone_curve(1.25)),
    ("contrast × 1.3", contrast(1.3)),
    ("contrast × 1.5", contrast(1.5)),
    ("contrast × 2", contrast(2.0)),
)
# The photo and a fainter copy of it a little aside (motion_blur's double image), and what must
# not read as one: JPEG's blocks repeat too.
DOUBLE_EDITS: tuple[tuple[str, Edit | None], ...] = (
    ("as taken", None),
    ("double, 0.08 aside at 40 %", double_exposure(0.08, 0.4)),
    ("double, 0.15 aside at 30 %", double_exposure(0.15, 0.3)),
    ("double, 0.1 aside at 45° at 30 %", double_exposure(0.1, 0.3, 45.0)),
    ("double, 0.1 aside at 20 %", double_exposure(0.1, 0.2)),
    ("double, 0.04 aside at 30 %", double_exposure(0.04, 0.3)),
    ("JPEG quality 15", jpeg(15)),
    ("JPEG quality 30", jpeg(30)),
    ("grain σ 12", grain(12.0)),
)
SPOILED: tuple[tuple[str, Edit], ...] = (
    ("toned sepia", toned(1.0)),
    ("toned sepia, JPEG 50", then(toned(1.0), jpeg(50))),
    ("enlarged from a third", enlarged(3.0)),
    ("JPEG quality 20", jpeg(20)),
    ("JPEG quality 10", jpeg(10)),
    ("JPEG quality 6", jpeg(6)),
    ("JPEG quality 3", jpeg(3)),
    ("mosaic, a sixth", mosaic(6)),
    *((f"posterised, {levels} tones", posterised(levels)) for levels in (4, 6, 8, 12, 16)),
    ("a gentle tone curve (0.8)", tone_curve(0.8)),
    ("contrast × 1.5", contrast(1.5)),
    ("contrast × 2", contrast(2.0)),
    ("black and white", black_and_white),
    ("one side shaded (0.5)", side_shadow(0.5)),
    ("one side in shadow (0.7)", side_shadow(0.7)),
    ("blurred 3 %", blur(0.03)),
    ("blurred 5 %", blur(0.05)),
    ("blurred 5 %, grain 12", blurred_with_grain(0.05, 12.0)),
    ("blurred 6 %, grain 12", blurred_with_grain(0.06, 12.0)),
    ("shaken sideways 4 %", shake(0.04)),
    ("shaken sideways 6 %", shake(0.06)),
    ("shaken sideways 10 %", shake(0.1)),
    ("shaken up-down 6 %", shake(0.06, 90.0)),
    ("shaken up-down 10 %", shake(0.1, 90.0)),
    ("shaken diagonally 6 %", shake(0.06, 45.0)),
    ("shaken diagonally 10 %", shake(0.1, 135.0)),
    ("grain 12", grain(12.0)),
    ("grain 25", grain(25.0)),
    ("green light", GREEN_LIGHT),
    ("tungsten light", TUNGSTEN_LIGHT),
    ("blue light", colour_cast(0.7, 0.9, 1.3)),
    ("magenta light", colour_cast(1.15, 0.8, 1.1)),
    ("glare 0.08 eyes wide", eye_glare(0.08)),
    ("glare 0.12 eyes wide", eye_glare(0.12)),
    ("glare 0.2 eyes wide", eye_glare(0.2)),
    ("red pupils, radius 0.02", red_eye(0.02)),
    ("red pupils, radius 0.035", red_eye(0.035)),
    ("red pupils, radius 0.05", red_eye(0.05)),
    *((f"{colour} face mask", face_mask(colour)) for colour in MASK_COLOURS),
    ("eyes closed", closed_eyes(both=True)),
    ("a wink", closed_eyes(both=False)),
    ("a wink, mascara", closed_eyes(both=False, lashes=1.6)),
    ("clear glasses", clear_glasses),
    ("grey-tinted glasses (0.5)", tinted_glasses(0.5, 0.5, 0.5)),
    ("blue-tinted glasses", tinted_glasses(0.45, 0.55, 0.75)),
    ("a knit hat", knit_hat),
    ("lips apart 0.04", open_mouth(0.04)),
    ("lips apart 0.06", open_mouth(0.06)),
    ("mouth open 0.14", open_mouth(0.14)),
    ("a brim's shadow (0.45)", brim_shadow(0.45)),
    *(
        (f"a lock of hair over {share:.0%} of an eye", hair_lock(share))
        for share in (0.25, 0.5, 0.75, 1)
    ),
)


def _spoiled(matte: Matte, crop: NDArray[np.uint8], face: Face, edit: Edit | None) -> Matte:
    """``matte`` with its foreground the source's crop edited by ``edit``, at the matte's size
    (the cut-out itself as taken)."""
    height, width = matte.foreground.shape[:2]
    spoiled_crop = crop if edit is None else edit(crop, face, no_photo)
    if spoiled_crop.shape[:2] != (height, width):
        spoiled_crop = np.asarray(
            cv2.resize(spoiled_crop, (width, height), interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
    return dataclasses.replace(matte, foreground=np.ascontiguousarray(spoiled_crop, dtype=np.uint8))


def shown(report: ComplianceReport, name: str) -> str:
    check = report.check(name)
    if not isinstance(check.value, float):
        return f"{name} -"
    return f"{name} {check.value:.2f} ({check.status.value})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    testdata = TESTDATA
    photos = real_photos(testdata)
    context = load_context(Settings().model_dump_json())
    detector, segmenter = context.models.detector, context.models.segmenter
    limits = LimitSettings()
    icao = IdPhotoOptions(get_spec("icao"))

    values: dict[str, list[float]] = {name: [] for name in CHECKS}
    passing: dict[str, list[float]] = {name: [] for name in CHECKS}
    verdicts: dict[str, Counter[str]] = {name: Counter() for name in CHECKS}
    occluded_verdicts: Counter[str] = Counter()
    blends: dict[str, list[tuple[float, str]]] = {name: [] for name in PRESET_COLOURS}
    mouth_spreads: list[float] = []
    bridges: list[tuple[float, str]] = []
    irises: list[tuple[float, str]] = []
    gaps: list[tuple[float, str]] = []
    shakes: list[tuple[float, float, str]] = []
    tones: dict[str, list[tuple[float, str]]] = {label: [] for label, _ in REGION_EDITS}
    bands: dict[str, list[tuple[float, str]]] = {label: [] for label, _ in BANDING_EDITS}
    doubles: dict[str, list[tuple[float, str]]] = {label: [] for label, _ in DOUBLE_EDITS}
    enlarged_by: dict[str, list[tuple[float, str]]] = {label: [] for label, _ in REGION_EDITS}
    faces = left_out = 0
    eye_covered_faces: list[str] = []
    for path in photos:
        rgb = decode_image(path.read_bytes(), limits).rgb
        for detected in detect_faces(rgb, detector, DetectOptions()):
            face = levelled_face(rgb, detected, context.models.aligner)  # as the service takes it
            faces += 1
            try:
                matte = compute_matte(rgb, face, segmenter)
            except NoSubject:
                left_out += 1
                continue
            report = render_id_photo(matte, face, icao).report
            region = face_region(matte, face)
            for label, region_edit in REGION_EDITS:
                spoiled_region = (
                    region if region_edit is None else region_edit(region, face, no_photo)
                )
                if (tone := tone_spread(spoiled_region)) is not None:
                    tones[label].append((tone, path.name))
                factor = enlargement(spoiled_region, matte.source_px_per_matte_px)
                enlarged_by[label].append((factor, path.name))
            box = matte.crop_box
            crop = rgb[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)]
            for label, banding_edit in BANDING_EDITS:
                spoiled_matte = _spoiled(matte, crop, face, banding_edit)
                if (band := banding(face_region(spoiled_matte, face))) is not None:
                    bands[label].append((band, path.name))
            for label, double_edit in DOUBLE_EDITS:
                spoiled_matte = _spoiled(matte, crop, face, double_edit)
                doubles[label].append((double_image(face_region(spoiled_matte, face)), path.name))
            for name in PRESET_COLOURS:
                blend = clothing_blend(matte, face, parse_background(name))
                if blend is not None:
                    blends[name].append((blend, path.name))
            if report.check("eyes_visible").limit.of == "eye_covered":
                eye_covered_faces.append(path.name)
            occluded = report.check("face_occluded")
            occluded_verdicts[occluded.status.value] += 1
            if spread := MOUTH_SPREAD.search(occluded.note):
                mouth_spreads.append(float(spread.group(1)))
            if bridge := GLASSES_BRIDGE.search(report.check("glasses").note):
                bridges.append((float(bridge.group(1)), path.name))
            if iris := EYE_IRIS.search(report.check("eyes_open").note):
                irises.append((float(iris.group(1)), path.name))
            if smear := SHAKE.search(report.check("motion_blur").note):
                shakes.append((float(smear.group(1)), float(smear.group(2)), path.name))
            mouth = report.check("mouth_closed")
            if gap := LIPS_GAP.search(mouth.note):
                gaps.append((float(gap.group(1)), path.name))
            elif mouth.limit.of == "lips_gap" and isinstance(mouth.value, float):
                gaps.append((mouth.value, path.name))
            for name in CHECKS:
                check = report.check(name)
                if isinstance(check.value, float):
                    values[name].append(check.value)
                    verdicts[name][check.status.value] += 1
                    if check.status.value == "pass":
                        passing[name].append(check.value)
    print(f"{faces} faces on {len(photos)} photos; {left_out} left out by the cut-out")
    for name in CHECKS:
        found = values[name]
        counts = ", ".join(f"{n} {status}" for status, n in sorted(verdicts[name].items()))
        line = f"  {name:14s} {min(found):.2f}–{max(found):.2f} over {len(found)} faces ({counts})"
        if len(passing[name]) < len(found):
            line += f"; those passing {min(passing[name]):.2f}–{max(passing[name]):.2f}"
        print(line)

    print(
        f"  {'eyes_visible':14s} an eye covered from the brow to below it (eye_covered) on "
        f"{len(eye_covered_faces)} faces: {', '.join(eye_covered_faces) or 'none'}"
    )

    counts = ", ".join(f"{n} {status}" for status, n in sorted(occluded_verdicts.items()))
    print(
        f"  {'face_occluded':14s} {counts}; the mouth's colour spread "
        f"{min(mouth_spreads):.0f}–{max(mouth_spreads):.0f}"
    )

    print(
        f"  {'glasses':14s} the darkest row between the eyes, lowest of {len(bridges)} faces: "
        + ", ".join(f"{value:.2f} {photo_name}" for value, photo_name in sorted(bridges)[:5])
    )

    print(
        f"  {'eyes_open':14s} the iris, lowest of {len(irises)} faces: "
        + ", ".join(f"{value:.2f} {photo_name}" for value, photo_name in sorted(irises)[:5])
    )

    print(
        f"  {'lips apart':14s} the widest gap between the lips of {len(gaps)} faces: "
        + ", ".join(f"{value:.2f} {photo_name}" for value, photo_name in sorted(gaps)[::-1][:5])
    )

    print(
        f"  {'smear':14s} the most smeared direction over across it, highest of {len(shakes)}"
        " faces (its correlation more than across): "
        + ", ".join(
            f"{ratio:.2f} ({more:+.2f}) {name}" for ratio, more, name in sorted(shakes)[::-1][:5]
        )
        + f"; the most correlated {max(more for _, more, _ in shakes):+.2f}"
    )

    for label, tone_values in tones.items():
        ranked = sorted(tone_values)
        under = sum(value < TONE_PASS for value, _ in ranked)
        print(
            f"  colour's tone, {label}: {ranked[0][0]:.3f} ({ranked[0][1]})–{ranked[-1][0]:.3f},"
            f" median {ranked[len(ranked) // 2][0]:.3f}; {under} of {len(ranked)} under"
            f" {TONE_PASS}"
        )
    for label, band_values in bands.items():
        ranked = sorted(band_values)
        values_only = np.array([value for value, _ in ranked])
        print(
            f"  banding, {label}: {ranked[0][0]:.3f} ({ranked[0][1]})–{ranked[-1][0]:.3f}"
            f" ({ranked[-1][1]}), 10 % under {np.percentile(values_only, 10):.3f}, median"
            f" {np.median(values_only):.3f}; over {BANDING_PASS} on"
            f" {int((values_only > BANDING_PASS).sum())}, over {BANDING_FAIL} on"
            f" {int((values_only > BANDING_FAIL).sum())} of {len(ranked)}"
        )
    for label, double_values in doubles.items():
        ranked = sorted(double_values)
        values_only = np.array([value for value, _ in ranked])
        print(
            f"  double image, {label}: {ranked[0][0]:.3f}–{ranked[-1][0]:.3f}"
            f" ({', '.join(f'{v:.3f} {n}' for v, n in ranked[-3:])}), median"
            f" {np.median(values_only):.3f}; over {DOUBLE_IMAGE_WARN} on"
            f" {int((values_only > DOUBLE_IMAGE_WARN).sum())} of {len(ranked)}"
        )
    for label, factors in enlarged_by.items():
        ranked = sorted(factors)
        over = [f"{value:.2f} {name}" for value, name in ranked if value > 1.0]
        print(
            f"  enlargement, {label}: {ranked[0][0]:.2f}–{ranked[-1][0]:.2f} over {len(ranked)}"
            f" faces; over 1 on {len(over)}: {', '.join(over[-6:])}"
        )

    for name, found_blends in blends.items():
        ranked = sorted(found_blends, reverse=True)[:3]
        print(
            f"  clothing_contrast on {name}: {len(found_blends)} faces with shoulders in view; "
            + ", ".join(f"{value:.2f} {photo_name}" for value, photo_name in ranked)
        )

    def photo(name: str) -> NDArray[np.uint8]:
        return decode_image((testdata / name).read_bytes(), limits).rgb

    print("portrait_2 spoiled:")
    for label, edit in SPOILED:
        spoiled = judge(
            Case(label, "portrait_2.jpg", "icao", "", "", edit), photo, context.models, segmenter
        )
        if isinstance(spoiled, str):
            print(f"  {label:26s} {spoiled}")
            continue
        print(f"  {label:26s} " + ", ".join(shown(spoiled, name) for name in CHECKS))
        occluded = spoiled.check("face_occluded")
        print(f"  {'':26s} face_occluded {occluded.status.value}: {occluded.note}")
        print(f"  {'':26s} glasses: {spoiled.check('glasses').note}")
        visible = spoiled.check("eyes_visible")
        print(
            f"  {'':26s} eyes_visible {visible.status.value} {visible.value:.3f} "
            f"({visible.limit.of or 'lightness spread'})"
            if isinstance(visible.value, float)
            else f"  {'':26s} eyes_visible {visible.status.value}"
        )
        print(f"  {'':26s} eyes_open: {spoiled.check('eyes_open').note}")
        print(f"  {'':26s} mouth_closed: {spoiled.check('mouth_closed').note}")
        print(f"  {'':26s} motion_blur: {spoiled.check('motion_blur').note}")


if __name__ == "__main__":
    main()
