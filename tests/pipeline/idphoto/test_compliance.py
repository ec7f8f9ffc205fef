"""The compliance report on real portraits and on synthetic heads with known pose."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import FaceAligner
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.pipeline.idphoto.compliance import HINTS, Check, CheckStatus, Limit, assess
from faceflow.pipeline.idphoto.compliance.background import (
    HEAD_NOTCH_WARN,
    check_clothing_contrast,
    head_notch,
)
from faceflow.pipeline.idphoto.compliance.colour import (
    COLOUR_FAIL,
    COLOUR_PASS,
    SKIN_COLOUR_PASS,
    TONE_FAIL,
    TONE_PASS,
    face_colour,
    skin_colour,
    skin_colour_distance,
    tone_spread,
)
from faceflow.pipeline.idphoto.compliance.eyes import EYES_IRIS_WARN, EYES_OPEN_WARN
from faceflow.pipeline.idphoto.compliance.features import (
    CROWN_DE_WARN,
    CROWN_DETAIL_MIN,
    TINTED_LENS_WARN,
    crown_colour,
    crown_detail,
    forehead_colour,
    head_top,
)
from faceflow.pipeline.idphoto.compliance.geometry import HEAD_DOME_MIN, HEAD_TOP_WARN, head_dome
from faceflow.pipeline.idphoto.compliance.mouth import MOUTH_GAP_WARN
from faceflow.pipeline.idphoto.compliance.overlays import colour_patch_share
from faceflow.pipeline.idphoto.compliance.quality import (
    BLOCKINESS_SHOWN_MAX,
    DOUBLE_IMAGE_WARN,
    ENLARGEMENT_NATIVE,
    FOCUS_FAIL,
    FOCUS_PASS,
    MOTION_BLUR_PASS,
    NOISE_PASS,
    SHAKE_PASS,
    SHARPNESS_PASS,
    SMEAR_RATIO_MAX,
    banding,
    blockiness,
    check_face_quality,
    check_noise,
    double_image,
    enlargement,
    focus,
    shake_anisotropy,
    sharpness,
    sideways_detail,
)
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px, face_region, matte_box
from faceflow.pipeline.idphoto.layout import measure_head, plan_layout
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import compute_matte
from faceflow.pipeline.idphoto.nudge import Nudge
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec, list_specs
from tests.fixtures.environment import require
from tests.pipeline.idphoto.conftest import CutOut, FindSource, Portrait
from tests.pipeline.idphoto.synthetic import EYES, synthetic
from tests.pipeline.idphoto.verdict_cases import (
    GREEN_LIGHT,
    MASK_COLOURS,
    Edit,
    black_and_white,
    blurred_with_grain,
    brim_shadow,
    cap_on_crown,
    clear_glasses,
    closed_eyes,
    colour_cast,
    colour_grain,
    contrast,
    cover_eyes,
    crop_below_chin,
    double_exposure,
    enlarged,
    exposure,
    eye_glare,
    face_mask,
    forehead_glare,
    fringe,
    grain,
    hair_lock,
    hijab,
    jpeg,
    knit_hat,
    lower_shadow,
    mosaic,
    object_at_hair,
    open_mouth,
    posterised,
    recoloured_beard,
    red_eye,
    red_glasses,
    scarf,
    shake,
    shrink,
    side_shadow,
    sticker,
    tinted_glasses,
    tone_curve,
    toned,
    white_top,
)

_SQUARES = (np.indices((10, 10)).sum(axis=0) % 2 * 200).astype(np.uint8)
CHECKERBOARD_8PX = np.repeat(np.repeat(_SQUARES, 8, axis=0), 8, axis=1)[..., None].repeat(3, axis=2)

EXPECTED_CHECKS = {
    "face_count",
    "head_height_ratio",
    "eye_line",
    "face_centred",
    "crown_margin",
    "roll",
    "yaw",
    "background_uniformity",
    "leftover_backdrop",
    "background_colour",
    "resolution",
    "sharpness",
    "focus",
    "motion_blur",
    "noise",
    "exposure",
    "clipped",
    "colour",
    "skin_colour",
    "blockiness",
    "banding",
    "clothing_contrast",
    "file_compression",
    "subject_cut_off",
    "face_occluded",
    "eyes_visible",
    "eyes_open",
    "glasses",
    "tinted_lenses",
    "forehead_visible",
    "eye_glare",
    "red_eye",
    "mouth_closed",
    "even_lighting",
    "eye_shadow",
}


def icao_check(item: Portrait, name: str) -> Check:
    """Check ``name`` of ``item``'s ICAO photo's report."""
    return render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report.check(
        name
    )


def assert_warned_by(check: Check, trigger: str, limit: float) -> None:
    """``check`` warns through its ``trigger`` (its limit's ``of``), read over ``limit``."""
    assert check.limit.of == trigger, check
    assert isinstance(check.value, float), check
    assert check.value > limit, check


def test_every_check_has_a_hint_in_english_and_chinese() -> None:
    assert set(HINTS) == EXPECTED_CHECKS
    assert all(english and chinese for english, chinese in HINTS.values())


def test_a_good_portrait_passes_and_the_report_is_json(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("portrait_2.jpg")  # plain grey studio background

    result = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("cn-1inch")))

    report = json.loads(json.dumps(result.report.to_dict()))
    assert {c["name"] for c in report["checks"]} == EXPECTED_CHECKS
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    for name in ("face_count", "head_height_ratio", "eye_line", "roll", "yaw"):
        assert statuses[name] == "pass", report
    for name in ("background_uniformity", "leftover_backdrop", "sharpness", "exposure", "clipped"):
        assert statuses[name] == "pass", report
    for name in ("subject_cut_off", "face_occluded", "eyes_visible", "mouth_closed"):
        assert statuses[name] == "pass", report
    # Every check says what to do, in English and in Chinese.
    for check in report["checks"]:
        assert check["hint"], check
        assert any("\u4e00" <= ch <= "\u9fff" for ch in check["hint_zh"]), check
    worst = max((CheckStatus(s) for s in statuses.values()), key=lambda s: s.rank)
    assert report["status"] == worst.value
    assert report["extended_edges"] == list(result.report.extended_edges)
    # Every check says what it allows as data a page can word in its own language.
    for check in report["checks"]:
        assert check["limit"], check
        assert check["allowed"], check


@pytest.mark.parametrize(
    ("limit", "text", "data"),
    [
        (Limit(1, 1), "exactly 1", {"min": 1, "max": 1}),
        (
            Limit(0.6286, 0.7714, also=Limit(22, 27, "mm")),
            "0.629–0.771 (22–27 mm)",
            {"min": 0.6286, "max": 0.7714, "also": {"min": 22, "max": 27, "unit": "mm"}},
        ),
        (
            Limit(3, 5, "mm", "from_bottom"),
            "3–5 mm from the bottom",
            {"min": 3, "max": 5, "unit": "mm", "of": "from_bottom"},
        ),
        (Limit(-8, 8, "deg"), "±8°", {"min": -8, "max": 8, "unit": "deg"}),
        (Limit(None, 12, of="std"), "std ≤ 12", {"max": 12, "of": "std"}),
        (
            Limit(None, 0.02, "fraction", "hair_zone"),
            "≤ 2 % of the hair zone",
            {"max": 0.02, "unit": "fraction", "of": "hair_zone"},
        ),
        (Limit(one_of=("white", "blue")), "white or blue", {"one_of": ["white", "blue"]}),
        (Limit(rule="nothing"), "none", {"rule": "nothing"}),
    ],
)
def test_a_limit_is_data_for_pages_and_english_for_api_clients(
    limit: Limit, text: str, data: dict[str, object]
) -> None:
    assert limit.text == text
    assert limit.to_dict() == data


def test_a_busy_background_is_a_warning_and_sets_the_overall_status(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("portrait_1.jpg")  # a street behind her

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("background_uniformity").status is CheckStatus.WARN
    assert report.check("leftover_backdrop").status is CheckStatus.WARN
    assert "busy backdrop" in report.check("leftover_backdrop").note
    assert report.status is not CheckStatus.PASS


@pytest.mark.parametrize("colour", [(200, 30, 40), (28, 28, 32)])
def test_a_hijab_in_any_colour_leaves_a_plain_wall_plain(
    cut_out: CutOut, colour: tuple[int, int, int]
) -> None:
    # The cut-out drops the dark jacket's shoulders at the photo's edge beside a red drape (u2netp
    # keeps the drape's outline); read as wall they made it busy (19.7, 4.6 in black).
    item = cut_out("portrait_2.jpg", hijab(colour))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("background_uniformity").status is CheckStatus.PASS


def test_backdrop_left_in_the_hair_is_a_warning(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("portrait_2.jpg")  # plain grey: re-keyed, almost nothing left
    patchy = dataclasses.replace(item.matte, leftover_backdrop=0.05)
    options = IdPhotoOptions(get_spec("icao"))

    clean = render_id_photo(item.matte, item.face, options).report.check("leftover_backdrop")
    left = render_id_photo(patchy, item.face, options).report.check("leftover_backdrop")

    assert clean.status is CheckStatus.PASS
    assert left.status is CheckStatus.WARN
    assert left.value == 0.05


def test_a_lump_joined_to_the_head_by_a_narrower_neck_is_a_notch() -> None:
    # A disc half an eye distance across its radius, overlapping the drawn head's side by 0.17
    # eye distances 0.67 above the eyes, as the verdict set's lamp touches the hair.
    matte, face = synthetic()
    distance = eye_distance_px(face) / matte.source_px_per_matte_px
    eye = matte.to_matte_px(face.landmarks.eye_centre)
    row = round(eye.y - 0.67 * distance)
    side = int(np.nonzero(matte.alpha[row] >= 0.5)[0].min())
    radius = round(0.5 * distance)
    alpha = matte.alpha.copy()
    cv2.circle(alpha, (side + round(0.17 * distance) - radius, row), radius, 1.0, -1)
    lamp = dataclasses.replace(matte, alpha=alpha)

    plain = head_notch(matte, face)
    notch = head_notch(lamp, face)

    assert plain is not None
    assert plain < 0.1
    assert notch is not None
    assert notch > HEAD_NOTCH_WARN


@pytest.mark.parametrize("background", ["white", None])
def test_shoulders_cut_away_with_a_wall_of_their_colour_warn_clothing_contrast(
    background: str | None,
) -> None:
    # A top the colour of the old wall cut away with it: the photo goes on below the chin, the
    # cut-out holds a neck there (df_img30's white T-shirt before a white wall). Judged on a
    # transparent photo too: the head floats whatever it is laid on.
    matte, face = synthetic()
    alpha = matte.alpha.copy()
    alpha[680:] = 0.0
    alpha[680:, 460:540] = 1.0
    neck_only = dataclasses.replace(matte, alpha=alpha)
    chosen = parse_background(background) if background else None

    dropped = check_clothing_contrast(neck_only, face, chosen)
    kept = check_clothing_contrast(matte, face, chosen)

    assert dropped.status is CheckStatus.WARN
    assert dropped.limit.of == "shoulder_width"
    assert dropped.value == 1.0  # the neck, one eye distance wide
    assert dropped.hint_zh
    assert kept.status is CheckStatus.PASS


def test_a_white_top_cut_away_with_the_white_wall_behind_warns(
    testdata: Path, cut_out: CutOut
) -> None:
    # df_img30's black T-shirt made white before his near-white wall: u2netp cuts it away with
    # the wall, and the shoulders' edge reads "no shoulders in view". As taken, the cut-out keeps
    # the shoulders out to the frame's sides.
    photo = "../devset/df_img30.jpg"
    require((testdata / photo).is_file(), f"photo {photo} not found")

    white = icao_check(cut_out(photo, white_top), "clothing_contrast")
    taken = icao_check(cut_out(photo, None), "clothing_contrast")

    assert (white.status, white.limit.of) == (CheckStatus.WARN, "shoulder_width"), white
    assert taken.status is CheckStatus.PASS, taken


@pytest.mark.parametrize(
    ("shape", "colour", "size", "above_eyes"),
    [
        ("disc", (30, 30, 30), 0.5, 0.67),  # the verdict set's lamp
        ("disc", (30, 30, 30), 0.5, 0.2),
        ("leaf", (60, 110, 50), 0.8, 0.2),
    ],
)
def test_something_of_the_old_backdrop_kept_with_the_head_warns(
    cut_out: CutOut, shape: str, colour: tuple[int, int, int], size: float, above_eyes: float
) -> None:
    # The cut-out keeps these, drawn on portrait_2's plain grey wall touching her hair, with her
    # head: the photo passed every check. Only the head's outline tells them.
    item = cut_out("portrait_2.jpg", object_at_hair(shape, colour, size, above_eyes))

    check = icao_check(item, "leftover_backdrop")

    assert (check.status, check.limit.of) == (CheckStatus.WARN, "head_notch"), check
    assert isinstance(check.value, float)
    assert check.value > HEAD_NOTCH_WARN
    assert "cut-out" in check.hints()[0]
    assert check.hints()[1]


@pytest.mark.parametrize(
    "photo",
    [
        # The deepest notches of real heads of one person (scripts/head_notch.py): Katy Perry's
        # curls, a busy backdrop's, then plain walls'; and portrait_2 as taken.
        "../devset/df_img43.jpg",
        "../devset/df_img21.jpg",
        "../devset/df_img18.jpg",
        "../devset/df_img30.jpg",
        "portrait_2.jpg",
    ],
)
def test_a_real_head_is_not_taken_for_one_with_something_kept_beside_it(
    testdata: Path, cut_out: CutOut, photo: str
) -> None:
    require((testdata / photo).is_file(), f"photo {photo} not found")
    item = cut_out(photo, None)

    notch = head_notch(item.matte, item.face)

    assert notch is not None
    assert notch < HEAD_NOTCH_WARN - 0.05
    assert icao_check(item, "leftover_backdrop").limit.of != "head_notch"


def test_another_face_the_cut_out_kept_in_the_frame_fails(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("obama.jpg")
    # A second face where the cut-out is opaque and the frame shows it, as a neighbour whose hair
    # touches the subject's is kept with it (tests/runtime: a real one).
    kept = replace(item.matte, others=(item.face,))

    report = render_id_photo(kept, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("face_count")
    assert (check.value, check.status) == (2, CheckStatus.FAIL)
    assert check.note == "another person's face shows in the photo"
    assert report.status is CheckStatus.FAIL


def test_another_face_the_cut_out_left_out_passes(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("obama.jpg")
    crop = item.matte.crop_box
    # In the crop's top corner: background, which the cut-out leaves transparent.
    corner = Box(crop.x1, crop.y1, crop.x1 + crop.width_px / 5, crop.y1 + crop.height_px / 5)
    box = item.face.box

    def moved(point: Point) -> Point:
        # Where the point lies in the face's box, in the corner's: the eyes go with the face.
        return Point(
            corner.x1 + (point.x - box.x1) * corner.width_px / box.width_px,
            corner.y1 + (point.y - box.y1) * corner.height_px / box.height_px,
        )

    marks = item.face.landmarks
    landmarks = Landmarks(*(moved(getattr(marks, f.name)) for f in dataclasses.fields(marks)))
    other = replace(item.face, box=corner, landmarks=landmarks)
    left_out = replace(item.matte, others=(other,))

    report = render_id_photo(left_out, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("face_count")
    assert (check.value, check.status, check.note) == (1, CheckStatus.PASS, "")


def _rendered_report(
    rgb: np.ndarray, item: Portrait, segmenter: U2NetpSegmenter, key: str = "cn-1inch"
) -> dict[str, CheckStatus]:
    matte = compute_matte(rgb, item.face, segmenter)
    report = render_id_photo(matte, item.face, IdPhotoOptions(get_spec(key))).report
    return {c.name: c.status for c in report.checks}


def test_a_blurred_photo_fails_sharpness(
    portrait: Callable[[str], Portrait], segmenter: U2NetpSegmenter
) -> None:
    item = portrait("portrait_2.jpg")
    sigma = 3 * item.face.box.width_px / 128  # 3 px once the face is scaled to 128 px
    blurred = np.asarray(cv2.GaussianBlur(item.rgb, (0, 0), sigma), dtype=np.uint8)

    statuses = _rendered_report(blurred, item, segmenter)

    assert statuses["sharpness"] is CheckStatus.FAIL


def test_a_dark_photo_fails_exposure(cut_out: CutOut) -> None:
    # The verdict set's under-exposed portrait (30 % of the light): its matte is shared.
    item = cut_out("portrait_2.jpg", exposure(0.3))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("cn-1inch"))).report

    assert report.check("exposure").status is CheckStatus.FAIL


def test_a_pale_face_at_half_its_light_warns_on_exposure(cut_out: CutOut) -> None:
    # One stop under, portrait_1's face keeps a mean luma inside 70-210 and passed; its brightest
    # 2 % (eye whites, highlights) stay under 120, where every real face reads 141 or more.
    item = cut_out("portrait_1.jpg", exposure(0.5))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("exposure")
    assert check.value is not None
    assert 70 <= float(check.value) <= 210, check
    assert check.status is CheckStatus.WARN, check


@pytest.mark.parametrize(
    ("gain", "status"), [(1.0, CheckStatus.PASS), (0.5, CheckStatus.FAIL)], ids=["dark", "dim"]
)
def test_a_dark_face_is_not_under_exposure_when_its_highlights_are_bright(
    gain: float, status: CheckStatus
) -> None:
    # Very dark skin read a face mean of 45-70 and failed or warned on every face tried, though
    # its eye whites and highlights were well exposed; the same face at half the light is dim.
    face = np.full((120, 100, 3), (52, 38, 30), np.uint8)  # skin at L* about 16
    face[40:46, 20:45] = face[40:46, 55:80] = (215, 210, 205)  # the eyes' whites, 2.5 %
    region = np.asarray(np.round(face * gain), np.uint8)

    no_forehead = np.empty((0, 3), np.uint8)
    exposure = check_face_quality(region, no_forehead)[2]

    assert exposure.name == "exposure"
    assert exposure.value is not None
    assert float(exposure.value) < 60
    assert exposure.status is status, exposure


def test_an_overexposed_photo_fails_clipping(cut_out: CutOut) -> None:
    # The verdict set's over-exposed portrait (190 % of the light): its matte is shared.
    item = cut_out("obama.jpg", exposure(1.9))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("cn-1inch"))).report

    assert report.check("clipped").status is CheckStatus.FAIL
    # Its colour is blown out with it: that is the exposure's fault, not a black-and-white photo.
    assert report.check("colour").status is CheckStatus.PASS


@pytest.mark.parametrize(
    ("photo", "width", "status"),
    [
        ("portrait_2.jpg", 0.25, CheckStatus.WARN),
        ("obama.jpg", 0.25, CheckStatus.WARN),
        ("portrait_2.jpg", 0.5, CheckStatus.FAIL),
    ],
)
def test_a_flash_glare_on_the_forehead_is_clipped(
    cut_out: CutOut, photo: str, width: float, status: CheckStatus
) -> None:
    # The central face starts 0.3 eye distances above the eyes: a blown-out reflection on the
    # forehead above it passed, though a counter refuses a photo with one.
    item = cut_out(photo, forehead_glare(width))

    clipped = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report.check(
        "clipped"
    )

    assert clipped.status is status, clipped
    assert "forehead" in clipped.note


def test_a_black_and_white_photo_fails_colour_and_a_colour_one_passes(cut_out: CutOut) -> None:
    # The verdict set's black-and-white portrait: its matte is shared.
    grey = cut_out("portrait_2.jpg", black_and_white)
    colour = cut_out("portrait_2.jpg", None)

    def check(item: Portrait) -> tuple[float, CheckStatus]:
        report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report
        found = report.check("colour")
        assert isinstance(found.value, float)
        return found.value, found.status

    assert check(grey) == (0.0, CheckStatus.FAIL)
    # Lips and teeth are told by colour: in grey they are not judged (every bright pixel read
    # as teeth, "mouth open").
    report = render_id_photo(grey.matte, grey.face, IdPhotoOptions(get_spec("icao"))).report
    for name in ("face_occluded", "mouth_closed"):
        assert (report.check(name).value, report.check(name).status) == (None, CheckStatus.PASS)
    value, status = check(colour)
    assert (value > 2 * COLOUR_PASS, status) == (True, CheckStatus.PASS)


def test_a_sepia_photo_fails_colour_though_it_has_colour(cut_out: CutOut) -> None:
    # The verdict set's sepia portrait: its face keeps a skin-like colour (saturation and skin
    # colour passed it), but all of it follows from the lightness.
    sepia = cut_out("portrait_2.jpg", toned(1.0))
    report = render_id_photo(sepia.matte, sepia.face, IdPhotoOptions(get_spec("icao"))).report

    found = report.check("colour")
    assert (found.status, found.limit.of) == (CheckStatus.FAIL, "tone_spread")
    assert isinstance(found.value, float)
    assert found.value < TONE_FAIL
    saturation = face_colour(face_region(sepia.matte, sepia.face))
    assert saturation is not None
    assert saturation > 2 * COLOUR_PASS
    assert "sepia" in found.hints()[0]
    assert "滤镜" in found.hints()[1]
    # Lips and teeth are not judged on it, as on a black-and-white photo.
    assert report.check("mouth_closed").value is None


@pytest.mark.parametrize(
    ("strength", "low", "high"),
    [
        (0.0, TONE_PASS, math.inf),  # the portrait's own colour
        (0.8, 0.0, TONE_PASS),  # a sepia filter at 80 %: a warning at least
        (1.0, 0.0, TONE_FAIL),
    ],
)
def test_tone_spread_falls_as_a_sepia_filter_takes_the_colour(
    portrait: Callable[[str], Portrait], strength: float, low: float, high: float
) -> None:
    item = portrait("portrait_2.jpg")
    box = item.face.box
    face = item.rgb[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)]

    spread = tone_spread(toned(strength)(face, item.face, lambda _: face))

    assert spread is not None
    assert low <= spread < high, spread


@pytest.mark.parametrize(("factor", "low", "high"), [(1.0, 1.0, 1.0), (3.0, 1.9, 2.1)])
def test_enlargement_reads_a_small_copy_blown_up(
    portrait: Callable[[str], Portrait], factor: float, low: float, high: float
) -> None:
    # portrait_2's central face as taken reads no enlargement; shrunk to a third and enlarged
    # back it keeps detail only every 3 px, 2× past a camera's own (ENLARGEMENT_NATIVE).
    item = portrait("portrait_2.jpg")
    region = face_region(item.matte, item.face)
    blown_up = enlarged(factor)(region, item.face, lambda _: region)

    assert low <= enlargement(blown_up, 1.0) <= high
    # A matte shrunk from a larger source: its pixels each hold that many source pixels.
    assert enlargement(blown_up, 2.0) >= 2.0 * max(1.0, factor / ENLARGEMENT_NATIVE) - 0.01


def test_a_small_copy_enlarged_fails_resolution_on_its_detail(cut_out: CutOut) -> None:
    # As many pixels as the portrait as taken, a third of the detail: resolution passed it on
    # the pixels (0.87 source px per output px) and sharpness only warned.
    icao = IdPhotoOptions(get_spec("icao"))
    taken = cut_out("portrait_2.jpg", None)
    blown_up = cut_out("portrait_2.jpg", enlarged(3.0))

    as_taken = render_id_photo(taken.matte, taken.face, icao).report.check("resolution")
    check = render_id_photo(blown_up.matte, blown_up.face, icao).report.check("resolution")

    assert (as_taken.status, as_taken.note) == (CheckStatus.PASS, "")
    assert isinstance(as_taken.value, float)
    assert as_taken.value > 0.8
    assert check.status is CheckStatus.FAIL
    assert isinstance(check.value, float)
    assert check.value < 0.5
    assert "enlarged" in check.note
    assert "enlarged" in check.hints()[0]


@pytest.mark.parametrize(
    ("kept", "status"),
    [
        (1.0, CheckStatus.PASS),
        (0.5, CheckStatus.PASS),
        (0.25, CheckStatus.WARN),
        (0.1, CheckStatus.FAIL),
    ],
)
def test_colour_follows_the_faces_saturation(
    portrait: Callable[[str], Portrait], kept: float, status: CheckStatus
) -> None:
    # The face of a colour portrait, ``kept`` of its colour left in Lab (lightness kept).
    item = portrait("portrait_2.jpg")
    box = item.face.box
    face = item.rgb[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)]
    lab = cv2.cvtColor(face, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 1:] = 128 + (lab[..., 1:] - 128) * kept
    faded = np.asarray(
        cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB), dtype=np.uint8
    )

    saturation = face_colour(faded)
    assert saturation is not None
    band = {
        CheckStatus.PASS: (COLOUR_PASS, math.inf),
        CheckStatus.WARN: (COLOUR_FAIL, COLOUR_PASS),
        CheckStatus.FAIL: (0.0, COLOUR_FAIL),
    }[status]
    assert band[0] <= saturation < band[1], saturation


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (None, CheckStatus.PASS),
        (jpeg(20), CheckStatus.PASS),  # a copy a counter still takes
        (jpeg(10), CheckStatus.WARN),
        (jpeg(5), CheckStatus.FAIL),
        (mosaic(6), CheckStatus.FAIL),
    ],
)
def test_jpeg_blocks_and_mosaic_squares_on_the_face_are_seen(
    cut_out: CutOut, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's coarse JPEG and mosaic share their mattes with it.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("blockiness").status is status, report.check("blockiness")


@pytest.mark.parametrize(
    ("photo", "edit", "status"),
    [
        ("../devset/df_img14.jpg", None, CheckStatus.PASS),
        # The studio's: hard bands, yellow-green blotches on the skin; every check passed it.
        ("../devset/df_img14.jpg", posterised(6), CheckStatus.FAIL),
        ("portrait_2.jpg", posterised(8), CheckStatus.FAIL),
        # Tones bent or stretched smoothly are not bands (portrait_2 as taken reads the most).
        ("portrait_2.jpg", tone_curve(0.8), CheckStatus.PASS),
        ("obama.jpg", contrast(1.5), CheckStatus.PASS),
        ("obama.jpg", contrast(2.0), CheckStatus.PASS),
        # A heavy JPEG's flat blocks are blockiness's (it warns on this one).
        ("portrait_2.jpg", jpeg(10), CheckStatus.PASS),
    ],
)
def test_posterised_tones_on_the_face_are_seen(
    cut_out: CutOut, photo: str, edit: Edit | None, status: CheckStatus
) -> None:
    item = cut_out(photo, edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("banding").status is status, report.check("banding")


def test_banding_of_a_smooth_ramp_a_staircase_and_a_clipped_face() -> None:
    ramp = np.tile(np.linspace(40, 200, 120, dtype=np.float32), (60, 1))
    rng = np.random.default_rng(3)
    grained = np.clip(ramp + rng.normal(0, 1.5, ramp.shape), 0, 255).astype(np.uint8)
    stairs = (np.round(ramp / 32) * 32).astype(np.uint8)  # 6 tones over the same ramp
    as_rgb = [np.repeat(plane[..., None], 3, axis=2) for plane in (grained, stairs)]

    smooth, banded = (banding(region) for region in as_rgb)

    assert smooth is not None
    assert smooth < 0.05
    assert banded is not None
    assert banded > 0.5
    assert banding(np.full((60, 120, 3), 255, np.uint8)) is None  # blown out: `clipped`'s


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (np.zeros((0, 0, 3), np.uint8), 1.0),  # nothing to measure
        (np.full((60, 60, 3), 128, np.uint8), 1.0),  # flat: no edges, no grid
        (np.zeros((8, 8, 3), np.uint8), 1.0),  # too small for four periods of any grid
        (CHECKERBOARD_8PX, BLOCKINESS_SHOWN_MAX),  # edges every 8 px and nowhere else
    ],
)
def test_blockiness_of_regions_with_no_grid_or_a_perfect_one(
    region: NDArray[np.uint8], expected: float
) -> None:
    assert blockiness(region) == expected


@pytest.mark.parametrize(
    ("depth", "status"),
    [(0.0, CheckStatus.PASS), (0.5, CheckStatus.WARN), (0.7, CheckStatus.FAIL)],
)
def test_a_shadow_across_one_side_of_the_face_is_seen(
    cut_out: CutOut, depth: float, status: CheckStatus
) -> None:
    # The verdict set's shaded portraits share their mattes with it.
    item = cut_out("portrait_2.jpg", side_shadow(depth) if depth else None)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("even_lighting").status is status, report.check("even_lighting")


def _face_of(item: Portrait) -> NDArray[np.uint8]:
    return face_region(item.matte, item.face)


def _blurred(region: NDArray[np.uint8], face_fraction: float) -> NDArray[np.uint8]:
    """``region`` (the central face, 1.6 eye distances wide) blurred by ``face_fraction`` of the
    eye distance, as the verdict set's ``blur`` does to a whole photo."""
    sigma = face_fraction * region.shape[1] / 1.6
    return np.asarray(cv2.GaussianBlur(region, (0, 0), sigma), dtype=np.uint8)


def _grainy(region: NDArray[np.uint8], sigma: float) -> NDArray[np.uint8]:
    noise = np.random.default_rng(0).normal(0.0, sigma, region.shape)
    return np.asarray(np.clip(region + noise, 0, 255), dtype=np.uint8)


@pytest.mark.parametrize("photo", ["portrait_2.jpg", "obama.jpg", "biden.jpg"])
def test_grain_hides_a_blur_from_sharpness_but_not_from_focus(
    portrait: Callable[[str], Portrait], photo: str
) -> None:
    region = _face_of(portrait(photo))
    blurred = _blurred(region, 0.05)

    # What the focus check is for: grain over a blurred face fools the Laplacian.
    assert sharpness(_grainy(blurred, 15.0)) > SHARPNESS_PASS
    assert focus(region) >= FOCUS_PASS
    assert focus(_grainy(region, 25.0)) >= FOCUS_PASS
    for sigma in (0.0, 8.0, 15.0):
        assert focus(_grainy(blurred, sigma)) < FOCUS_FAIL, sigma


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (None, CheckStatus.PASS),
        (grain(12.0), CheckStatus.PASS),
        (blurred_with_grain(0.06, 12.0), CheckStatus.FAIL),
    ],
)
def test_focus_in_the_report(cut_out: CutOut, edit: Edit | None, status: CheckStatus) -> None:
    # The verdict set's grainy portraits share their mattes with it.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("focus").status is status, report.check("focus")


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (None, CheckStatus.PASS),
        (grain(12.0), CheckStatus.PASS),  # grain is even in every direction
        (blurred_with_grain(0.06, 12.0), CheckStatus.PASS),  # a blur, not a smear: focus's
        (shake(0.05), CheckStatus.WARN),  # 0.12
        (shake(0.1), CheckStatus.FAIL),  # 0.05
    ],
)
def test_a_sideways_smear_is_seen(cut_out: CutOut, edit: Edit | None, status: CheckStatus) -> None:
    # Smeared sideways over a tenth of the eye distance, portrait_2 kept sharpness 78 and focus
    # 3.8: the face's level edges (brows, eyes, lips) stay crisp, and they carry most of its detail.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("motion_blur").status is status, report.check("motion_blur")
    if edit is shake(0.1):
        assert report.check("sharpness").status is CheckStatus.PASS
        assert report.check("focus").status is CheckStatus.PASS


@pytest.mark.parametrize("photo", ["portrait_1.jpg", "obama.jpg", "biden.jpg", "rose_leslie.jpg"])
def test_real_faces_are_not_read_as_smeared(
    portrait: Callable[[str], Portrait], photo: str
) -> None:
    # Every real face of the test and dev-set photos 0.20-2.2 (scripts/compliance_ranges.py).
    detail, falls = sideways_detail(_face_of(portrait(photo)))
    assert detail >= MOTION_BLUR_PASS
    assert falls >= SMEAR_RATIO_MAX


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (shake(0.06, 90.0), CheckStatus.FAIL),  # 2.36
        (shake(0.06, 45.0), CheckStatus.WARN),  # 2.01
        (shake(0.1, 135.0), CheckStatus.FAIL),  # 2.44
    ],
)
def test_a_smear_in_any_direction_is_seen(cut_out: CutOut, edit: Edit, status: CheckStatus) -> None:
    # Smeared up-down or diagonally over 6 % of the eye distance, portrait_2 passed every check
    # (sharpness 51 and 71, focus 3.3 and 3.6), and the sideways measure reads ~0.3 on both.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("motion_blur").status is status, report.check("motion_blur")
    assert report.check("motion_blur").limit.of == "smear"
    if edit is not shake(0.1, 135.0):
        assert report.check("sharpness").status is CheckStatus.PASS
        assert report.check("focus").status is CheckStatus.PASS


@pytest.mark.parametrize("photo", ["portrait_1.jpg", "obama.jpg", "biden.jpg", "rose_leslie.jpg"])
def test_real_faces_are_not_read_as_shaken(portrait: Callable[[str], Portrait], photo: str) -> None:
    # Every real face of the test and dev-set photos 1.03-1.56 (scripts/compliance_ranges.py).
    ratio, _, _ = shake_anisotropy(_face_of(portrait(photo)))
    assert ratio < SHAKE_PASS


@pytest.mark.parametrize(
    "edit",
    [double_exposure(0.08, 0.4), double_exposure(0.15, 0.3), double_exposure(0.1, 0.3, 45.0)],
)
@pytest.mark.parametrize("photo", ["portrait_2.jpg", "../devset/df_img14.jpg"])
def test_a_double_exposure_is_seen(cut_out: CutOut, edit: Edit, photo: str) -> None:
    # A fainter copy of the face a little aside smears nothing: it passed every check on both
    # faces whose ICAO photos pass as taken (scripts/counter_edits.py --round 3).
    item = cut_out(photo, edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("motion_blur")
    assert check.status is CheckStatus.WARN, check
    assert check.limit.of == "double_image"
    assert check.hints()[0].startswith("The face shows twice")
    assert "重影" in check.hints()[1]


@pytest.mark.parametrize(
    "photo", ["portrait_1.jpg", "portrait_2.jpg", "obama.jpg", "biden.jpg", "rose_leslie.jpg"]
)
def test_real_faces_are_not_read_as_double(portrait: Callable[[str], Portrait], photo: str) -> None:
    # Every real face of the test and dev-set photos 0.108 or less, portrait_2 the highest
    # (scripts/compliance_ranges.py).
    assert double_image(_face_of(portrait(photo))) < DOUBLE_IMAGE_WARN


@pytest.mark.parametrize("edit", [closed_eyes(both=True), cover_eyes("skin")])
def test_eyes_shut_or_covered_are_not_read_as_smeared(cut_out: CutOut, edit: Edit) -> None:
    # Both take most of the face's upright detail (0.09 and 0.11 across over down), as a smear
    # does, and told the person to hold the camera steady; they keep their fine part.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("motion_blur").status is CheckStatus.PASS, report.check("motion_blur")


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (None, CheckStatus.PASS),
        # Noise in each channel apart: grey and colour grain (9.4, 21.7, 31.4).
        (grain(12.0), CheckStatus.WARN),
        (grain(30.0), CheckStatus.FAIL),
        (grain(50.0), CheckStatus.FAIL),
        (colour_grain(35.0), CheckStatus.FAIL),  # 25.3; grey alone read it as clean
    ],
)
def test_grain_on_the_face_is_seen(cut_out: CutOut, edit: Edit | None, status: CheckStatus) -> None:
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("noise").status is status, report.check("noise")


def test_grain_is_not_measured_where_no_cheek_is_in_the_cut_out(
    portrait: Callable[[str], Portrait],
) -> None:
    # A crowd's face at the photo's edge put its cheeks outside the matte: OpenCV was handed an
    # empty array and raised (a 500 for that photo).
    item = portrait("obama.jpg")
    away = item.matte.crop_box.width_px * 3
    marks = item.face.landmarks
    outside = replace(
        item.face, landmarks=Landmarks(*(Point(p.x - away, p.y) for p in marks.points()))
    )

    check = check_noise(item.matte, outside, 60.0)

    assert (check.value, check.status) == (None, CheckStatus.PASS)
    assert check.note == "no cheek in view to measure"


# Not yet seen where the mouth in shadow does not read dark over 75 % of its box: obama's teeth
# (the check reads a lower face in shadow only where it would otherwise read an object).
@pytest.mark.parametrize("photo", ["portrait_2.jpg", "rose_leslie.jpg"])
def test_a_lower_face_in_shadow_fails_lighting_not_as_a_covered_mouth(
    cut_out: CutOut, photo: str
) -> None:
    # At 45 % light below the nose the whole mouth box reads dark, as a microphone does; the
    # skin beside the mouth, dark as well, tells the shadow from the object.
    item = cut_out(photo, lower_shadow(0.55))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    occluded, lighting = report.check("face_occluded"), report.check("even_lighting")
    assert occluded.status is CheckStatus.PASS, occluded
    assert lighting.status is CheckStatus.FAIL, lighting
    assert "lower face" in lighting.note


@pytest.mark.parametrize(
    "photo", ["obama.jpg", "obama_small.jpg", "portrait_1.jpg", "rose_leslie.jpg", "biden.jpg"]
)
def test_real_photos_have_no_grain_to_speak_of(
    portrait: Callable[[str], Portrait], photo: str
) -> None:
    # obama_small: the most enlarged face of the test and dev-set photos, and the most grain (4.7).
    item = portrait(photo)

    check = icao_check(item, "noise")

    assert check.status is CheckStatus.PASS, check
    assert isinstance(check.value, float)
    assert check.value < NOISE_PASS / 1.5


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        (15.0, 20.0, 0.0),  # a typical face
        (0.0, 0.0, 0.0),  # grey: inside (the colour check judges it)
        (-10.0, 20.0, 10.0),  # green: 10 past the 90° hue edge
        (40.0, 0.0, 10.0),  # magenta: a* 10 past its bound
        (10.0, 45.0, 11.0),  # yellow: b* 11 past its bound
        (30.0, 34.0, 4.34),  # both bounds met, chroma 45.3 over 41 (the wedge's arc)
        (0.0, -10.0, 9.96),  # blue, hue -90°: from the -5° edge's ray, at 0.87 along it
    ],
)
def test_skin_colour_distance(a: float, b: float, distance: float) -> None:
    assert skin_colour_distance(a, b) == pytest.approx(distance, abs=0.01)


@pytest.mark.parametrize("photo", ["portrait_1.jpg", "portrait_2.jpg", "obama.jpg", "biden.jpg"])
@pytest.mark.parametrize(
    ("gains", "flagged"),
    [
        ((1.0, 1.0, 1.0), False),
        ((1.0, 1.25, 0.6), True),  # fluorescent green
        ((0.6, 0.85, 1.4), True),  # blue
        ((1.15, 0.8, 1.1), True),  # magenta
    ],
)
def test_a_colour_cast_puts_the_face_outside_real_skin_colours(
    portrait: Callable[[str], Portrait],
    photo: str,
    gains: tuple[float, float, float],
    flagged: bool,
) -> None:
    region = _face_of(portrait(photo)).astype(np.float32) * np.array(gains, np.float32)
    median = skin_colour(np.clip(region, 0, 255).astype(np.uint8))
    assert median is not None

    distance = skin_colour_distance(*median)

    # A cast is at least a warning (biden's pale face under green light: 5, the others fail).
    assert (distance > SKIN_COLOUR_PASS) is flagged, median


@pytest.mark.parametrize(
    "photo",
    [
        "df_img3.jpg",  # a closed smile in nude lipstick: lips 10 redder than the cheeks
        "df_img45.jpg",  # the same under pink stage light
        "df_img59.jpg",  # a full dark beard around a closed mouth: 63 % of the mouth box dark
    ],
)
def test_closed_pale_lips_and_a_dark_beard_are_not_read_as_a_covered_mouth(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter, photo: str
) -> None:
    # Three of the devset's real faces, failed "mouth covered" before the lips' minimum and the
    # dark share of an object were set on all 82 real faces (see LIPS_RED_MIN).
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    found = source(f"../devset/{photo}", None)
    face = found.faces[0]  # the main subject (df_img59 also has a bystander)
    matte = compute_matte(found.rgb, face, segmenter)

    check = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report.check(
        "face_occluded"
    )

    assert (check.value, check.status) == ("none", CheckStatus.PASS), check.note


@pytest.mark.parametrize("colour", sorted(MASK_COLOURS))
def test_a_face_mask_of_any_colour_covers_the_mouth(cut_out: CutOut, colour: str) -> None:
    # A white or light blue mask read as teeth ("mouth open", a warning), a pink one as lips.
    item = cut_out("portrait_2.jpg", face_mask(colour))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("face_occluded")
    assert (check.value, check.status) == ("mouth covered", CheckStatus.FAIL), check.note
    assert report.check("mouth_closed").status is CheckStatus.PASS  # not blamed on a smile


def test_under_green_light_the_report_blames_the_cast_not_the_mouth(cut_out: CutOut) -> None:
    # The verdict set's portrait under green light: its matte is shared.
    item = cut_out("portrait_2.jpg", GREEN_LIGHT)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("skin_colour").status is CheckStatus.FAIL
    # The cast takes the lips' red: they are not judged rather than read as covered.
    for name in ("face_occluded", "mouth_closed", "red_eye"):
        check = report.check(name)
        assert (check.value, check.status) == (None, CheckStatus.PASS), check
        assert "colour cast" in check.note


@pytest.mark.parametrize("gains", [(0.8, 1.0, 1.1), (0.85, 1.0, 1.15)])
def test_a_cyan_cast_on_a_pale_face_warns_for_the_cast_not_the_mouth(
    testdata: Path,
    source: FindSource,
    segmenter: U2NetpSegmenter,
    gains: tuple[float, float, float],
) -> None:
    # df_img3 (devset, pale, a closed smile) under a cyan cast: its face's a*b* (2, 5) lies
    # inside real skin's colours, so skin_colour passed it, and its pale skin washed grey read
    # as teeth: mouth_closed warned (teeth 20 %) for the wrong reason.
    require((testdata.parent / "devset" / "df_img3.jpg").is_file(), "devset df_img3 not found")
    found = source("../devset/df_img3.jpg", colour_cast(*gains))
    face = found.faces[0]
    matte = compute_matte(found.rgb, face, segmenter)

    report = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report

    skin = report.check("skin_colour")
    assert skin.status is CheckStatus.WARN, skin.note
    assert skin.limit.of == "saturation"
    assert "saturation of ≥ 0.15" in skin.limit.text  # the API says the limit in words
    assert report.check("mouth_closed").status is CheckStatus.PASS


def test_a_cast_that_leaves_too_little_colour_is_not_read_as_teeth(
    source: FindSource, segmenter: U2NetpSegmenter
) -> None:
    # portrait_1 under a mild cyan cast: little enough colour that `colour` warns (under 0.08),
    # and its greyed lips read as teeth: mouth_closed warned as well, for the wrong reason.
    found = source("portrait_1.jpg", colour_cast(0.9, 1.0, 1.1))
    face = found.faces[0]
    matte = compute_matte(found.rgb, face, segmenter)

    report = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("colour").status is CheckStatus.WARN
    mouth = report.check("mouth_closed")
    assert mouth.status is CheckStatus.PASS, mouth.note
    assert "colour" in mouth.note


@pytest.mark.parametrize("photo", ["df_img14.jpg", "df_img3.jpg", "portrait_2.jpg"])
def test_the_palest_real_faces_pass_skin_colour(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter, photo: str
) -> None:
    # The least saturated real faces (df_img14 0.18, the lowest of the test set and the devset;
    # portrait_2 0.19) and df_img3 as taken: no cast.
    name = photo if (testdata / photo).is_file() else f"../devset/{photo}"
    require((testdata / name).is_file(), f"photo {photo} not found")
    found = source(name, None)
    face = found.faces[0]
    matte = compute_matte(found.rgb, face, segmenter)

    report = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("skin_colour").status is CheckStatus.PASS


def test_skin_colour_is_not_judged_on_a_black_and_white_photo(cut_out: CutOut) -> None:
    item = cut_out("portrait_2.jpg", black_and_white)

    check = icao_check(item, "skin_colour")

    assert (check.value, check.status) == (None, CheckStatus.PASS)


@pytest.mark.parametrize(
    ("width", "status"),
    [
        (0.0, CheckStatus.PASS),  # as taken: catchlights only
        (0.12, CheckStatus.WARN),  # half the iris
        (0.2, CheckStatus.FAIL),  # the iris gone
    ],
)
def test_glare_over_the_eyes_is_seen(cut_out: CutOut, width: float, status: CheckStatus) -> None:
    # The verdict set's portrait with glare over the eyes shares its matte with it.
    item = cut_out("portrait_2.jpg", eye_glare(width) if width else None)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("eye_glare").status is status, report.check("eye_glare")
    if status is CheckStatus.WARN:
        # What the check is for: the eyes' lightness spread does not see it.
        assert report.check("eyes_visible").status is CheckStatus.PASS


@pytest.mark.parametrize(
    ("coverage", "status", "of"),
    [
        (0.0, CheckStatus.PASS, ""),  # as taken
        (0.75, CheckStatus.WARN, "eye_covered"),  # three quarters of the eye's width
        (1.0, CheckStatus.FAIL, ""),  # the whole eye: the lightness spread fails it
    ],
)
def test_a_lock_of_hair_across_an_eye_is_seen(
    cut_out: CutOut, coverage: float, status: CheckStatus, of: str
) -> None:
    # The verdict set's portraits with a lock of her own hair across an eye share these mattes.
    item = cut_out("portrait_2.jpg", hair_lock(coverage) if coverage else None)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("eyes_visible")
    assert (check.status, check.limit.of) == (status, of), check
    if status is CheckStatus.WARN:
        # The lock has light and dark strands: the lightness spread alone passed it.
        assert "lock of hair" in check.note


@pytest.mark.parametrize(
    ("photo", "edit", "status"),
    [
        ("portrait_2.jpg", None, CheckStatus.PASS),  # as taken
        # df_img40's grey beard: a real face whose chin held grey, read as cloth before.
        ("../devset/df_img40.jpg", None, CheckStatus.PASS),
        # df_img61's full brown beard made black and white: ICAO accepts beards. Counting grey
        # as cloth read them 0.95 and 1.0 (scripts/chin_beard.py).
        ("../devset/df_img61.jpg", recoloured_beard(0.5, 0.8), CheckStatus.PASS),
        ("../devset/df_img61.jpg", recoloured_beard(0.2, 1.0, white=True), CheckStatus.PASS),
        ("portrait_2.jpg", scarf("navy"), CheckStatus.WARN),  # the chin under it, lips clear
        ("portrait_2.jpg", scarf("navy", 0.25), CheckStatus.WARN),  # the chin's lower part
    ],
)
def test_a_coloured_scarf_over_the_chin_is_seen_a_black_or_white_beard_is_not(
    cut_out: CutOut, photo: str, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's portrait_2 with a navy scarf shares its matte with this test.
    check = icao_check(cut_out(photo, edit), "face_occluded")

    assert check.status is status, check
    if status is CheckStatus.WARN:
        # The lips stay in view: the mouth's own measures pass it, the chin's cover does not.
        assert_warned_by(check, "chin_covered", 0.25)


@pytest.mark.parametrize(
    ("photo", "edit", "status"),
    [
        # A black scarf is grey, as a black beard is: the chin's cover passed it. Cloth is smooth.
        ("portrait_2.jpg", scarf("black"), CheckStatus.WARN),
        ("portrait_2.jpg", scarf("black", 0.25), CheckStatus.WARN),
        # A real full dark beard, and made darker, is strands (scripts/chin_dark.py).
        ("../devset/df_img61.jpg", None, CheckStatus.PASS),
        ("../devset/df_img61.jpg", recoloured_beard(0.1, 0.5), CheckStatus.PASS),
    ],
)
def test_a_black_scarf_over_the_chin_is_seen_by_its_smoothness_a_black_beard_is_not(
    cut_out: CutOut, photo: str, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's portrait_2 with a black scarf shares its matte with this test.
    check = icao_check(cut_out(photo, edit), "face_occluded")

    assert check.status is status, check
    if status is CheckStatus.WARN:
        assert check.limit.of == "chin_detail", check
        assert isinstance(check.value, float), check
        assert check.value < 0.3, check


@pytest.mark.parametrize(
    ("photo", "edit", "status"),
    [
        ("portrait_2.jpg", None, CheckStatus.PASS),  # as taken
        # A yellow smiley over an eye or a cheek passed every check: its drawn eyes keep the
        # eye's light-dark detail, the lips stay in view.
        ("portrait_2.jpg", sticker("eye"), CheckStatus.WARN),
        ("portrait_2.jpg", sticker("cheek"), CheckStatus.WARN),
        ("../devset/df_img14.jpg", sticker("cheek"), CheckStatus.WARN),
        # Red frames are as colourful, but a line: a counter takes them. On df_img14's pale skin
        # they read 0.125 before lines were left out (scripts/colour_patch.py).
        ("../devset/df_img14.jpg", red_glasses, CheckStatus.PASS),
        # Cloth framing the face, as colourful: a counter takes a religious head covering.
        ("portrait_2.jpg", hijab((200, 30, 40)), CheckStatus.PASS),
        ("portrait_2.jpg", hijab((200, 30, 40), 0.8, 0.7), CheckStatus.PASS),  # pinned close
    ],
)
def test_a_sticker_over_the_face_is_seen_a_coloured_glasses_frame_is_not(
    cut_out: CutOut, photo: str, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's stickers share these mattes.
    check = icao_check(cut_out(photo, edit), "face_occluded")

    assert check.status is status, check
    if status is CheckStatus.WARN:
        assert_warned_by(check, "colour_patch", 0.08)
        assert check.hints()[1], check


def _skin_with(
    colour: tuple[int, int, int], draw: Callable[[NDArray[np.uint8], tuple[int, int, int]], object]
) -> NDArray[np.uint8]:
    """A plain skin-coloured face region, 60 px an eye distance (see :func:`_patch`), with
    ``draw`` done on it in ``colour``."""
    region = np.full((200, 200, 3), (200, 160, 140), np.uint8)
    draw(region, colour)
    return region


def _patch(region: NDArray[np.uint8], outside: int = 0) -> float | None:
    """colour_patch_share on ``region``, its ``outside`` left columns out of the cut-out."""
    opaque = np.ones(region.shape[:2], bool)
    opaque[:, :outside] = False
    eyes_mouth = (Point(70, 70), Point(130, 70), Point(100, 135))
    return colour_patch_share(region, opaque, (58, 64, 142, 141), eyes_mouth, 60.0)


def test_a_colour_patch_that_reaches_past_the_face_is_cloth_not_a_sticker() -> None:
    red = (200, 30, 40)
    # Red cloth drawn in from the region's edge across the image-left cheek (a hood or hijab
    # pinned close) frames the face; the same red as an island on the cheek is laid on it.
    cloth = _skin_with(red, lambda rgb, c: cv2.rectangle(rgb, (0, 90), (77, 199), c, -1))
    disc = _skin_with(red, lambda rgb, c: cv2.circle(rgb, (60, 110), 22, c, -1))
    assert _patch(_skin_with(red, lambda rgb, c: None)) == 0.0
    assert _patch(cloth) == 0.0
    laid = _patch(disc)
    assert laid is not None
    assert laid > 0.08
    # The cut-out's outline next to a patch counts as the region's edge: cloth at the face's side.
    assert _patch(disc, outside=40) == 0.0


@pytest.mark.parametrize(
    ("radius", "status"),
    [
        (0.0, CheckStatus.PASS),  # as taken: dark pupils
        (0.02, CheckStatus.PASS),  # a red dot, no more than a reflection
        (0.035, CheckStatus.WARN),  # partly red
        (0.05, CheckStatus.FAIL),  # a pupil dilated in dim light, all red
    ],
)
def test_red_eyes_are_seen(cut_out: CutOut, radius: float, status: CheckStatus) -> None:
    item = cut_out("portrait_2.jpg", red_eye(radius) if radius else None)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("red_eye").status is status, report.check("red_eye")
    # Red pupils are still eyes to the lightness spread, and no glare.
    assert report.check("eyes_visible").status is CheckStatus.PASS
    assert report.check("eye_glare").status is CheckStatus.PASS


def test_red_eyes_are_not_judged_on_eyes_too_small_to_tell(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter
) -> None:
    # The face's eyes 43 px apart: red eyeliner under a pink stage light filled 17 % of the few
    # pixels over a pupil.
    require((testdata.parent / "devset/df_img27.jpg").is_file(), "devset photo df_img27 not found")
    found = source("../devset/df_img27.jpg", None)
    matte = compute_matte(found.rgb, found.faces[0], segmenter)

    check = render_id_photo(matte, found.faces[0], IdPhotoOptions(get_spec("icao"))).report.check(
        "red_eye"
    )

    assert (check.value, check.status) == (None, CheckStatus.PASS), check
    assert "too small" in check.note


def test_a_crown_margin_short_of_the_size_s_says_by_how_much(cut_out: CutOut) -> None:
    # The verdict set's portrait cut at the shoulders: the layout keeps the frame inside the
    # photo at the crown margin's expense. The warning had no note.
    item = cut_out("portrait_2.jpg", crop_below_chin(0.6))

    check = icao_check(item, "crown_margin")

    assert check.status is CheckStatus.WARN
    assert isinstance(check.value, float)
    short = get_spec("icao").height_mm * 0.05 - check.value
    assert check.note == f"{short:.1f} mm less room above the hair than this size asks for"


def test_lighting_is_not_judged_when_a_cheek_is_out_of_the_cut_out(cut_out: CutOut) -> None:
    item = cut_out("portrait_2.jpg", None)
    alpha = item.matte.alpha.copy()
    middle = round(item.matte.to_matte_px(item.face.landmarks.nose).x)
    alpha[:, middle:] = 0.0  # the left cheek (right of the picture) gone, as if turned away
    matte = dataclasses.replace(item.matte, alpha=alpha)

    report = render_id_photo(matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    lighting = report.check("even_lighting")
    assert (lighting.value, lighting.status, lighting.note) == (
        None,
        CheckStatus.PASS,
        "a cheek is not in view",
    )


def test_a_small_source_enlarged_fails_resolution(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("obama_small.jpg")  # 320×240: the head is ~100 px tall

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("ca-passport"))).report

    check = report.check("resolution")
    assert isinstance(check.value, float)
    assert check.value < 0.6
    assert check.status is CheckStatus.FAIL


@pytest.mark.parametrize(
    ("roll", "status"),
    [
        (0.0, CheckStatus.PASS),
        (-6.0, CheckStatus.PASS),
        (12.0, CheckStatus.WARN),
        (18.0, CheckStatus.FAIL),
    ],
)
def test_roll(roll: float, status: CheckStatus) -> None:
    matte, face = synthetic(roll)
    layout = plan_layout(matte, face, get_spec("icao"))

    check = assess(layout, matte, face, parse_background("white")).check("roll")

    assert check.value == pytest.approx(roll, abs=1e-6)
    assert check.status is status


@pytest.mark.parametrize(
    ("spec", "shift_mm", "status"),
    [
        ("icao", 0.0, CheckStatus.PASS),
        ("icao", -1.75, CheckStatus.PASS),  # 5 % of the width: ISO/IEC 19794-5's tolerance
        ("icao", 3.5, CheckStatus.WARN),  # the largest nudge, 10 %
        ("us-passport", -5.0, CheckStatus.WARN),
    ],
)
def test_a_face_nudged_off_centre_warns(spec: str, shift_mm: float, status: CheckStatus) -> None:
    # A nudge may move the face 10 % of the width off the middle; a report on that photo passed.
    matte, face = synthetic(0.0)
    layout = plan_layout(matte, face, get_spec(spec), Nudge(shift_mm=shift_mm))

    check = assess(layout, matte, face, parse_background("white")).check("face_centred")

    assert check.value == pytest.approx(shift_mm, abs=0.02)
    assert check.status is status
    assert check.hints()[0]


@pytest.mark.parametrize(
    ("shift", "yaw", "status"),
    [
        (0.0, 0.0, CheckStatus.PASS),
        (0.5 * math.sin(math.radians(5)), 5.0, CheckStatus.PASS),
        (-0.5 * math.sin(math.radians(12)), -12.0, CheckStatus.WARN),
        (0.5 * math.sin(math.radians(30)), 30.0, CheckStatus.FAIL),
    ],
)
def test_yaw_from_the_nose_offset(shift: float, yaw: float, status: CheckStatus) -> None:
    matte, face = synthetic(nose_shift=shift)
    layout = plan_layout(matte, face, get_spec("icao"))

    check = assess(layout, matte, face, parse_background("white")).check("yaw")

    assert check.value == pytest.approx(yaw, abs=0.01)
    assert check.status is status


@pytest.mark.parametrize(
    ("spec", "colour", "style", "status"),
    [
        ("icao", "white", "solid", CheckStatus.PASS),  # white or light grey
        ("icao", "grey", "solid", CheckStatus.PASS),
        ("icao", "white", "radial", CheckStatus.WARN),
        ("us-passport", "#f2f2f2", "solid", CheckStatus.PASS),  # "white or off-white"
        ("us-passport", "#e0e0e0", "solid", CheckStatus.WARN),  # ΔE 5.5 from the light grey
        # A counter refuses these outright; they were warnings.
        ("icao", "blue", "solid", CheckStatus.FAIL),
        ("us-passport", "red", "solid", CheckStatus.FAIL),
        ("us-passport", "blue", "radial", CheckStatus.FAIL),
    ],
)
def test_background_colour_against_the_spec(
    spec: str, colour: str, style: str, status: CheckStatus
) -> None:
    matte, face = synthetic()
    layout = plan_layout(matte, face, get_spec(spec))

    check = assess(layout, matte, face, parse_background(colour, style)).check("background_colour")

    assert check.status is status, check


def test_a_subject_cut_by_the_frame_fails_and_says_what_is_missing() -> None:
    # Only the head and a strip of shoulder were photographed: no choice fits Canada's 50×70 mm.
    matte, face = synthetic(crop=Box(330, 300, 670, 760))
    layout = plan_layout(matte, face, get_spec("ca-passport"))

    report = assess(layout, matte, face, parse_background("white"))

    check = report.check("subject_cut_off")
    assert check.status is CheckStatus.FAIL
    assert report.status is CheckStatus.FAIL
    assert isinstance(check.value, float)
    assert check.value >= 1.0
    missing = layout.cut_mm[layout.cut_edges.index("bottom")]
    assert f"the photo ends {missing:.1f} mm above the shoulder line" in check.note
    hint, hint_zh = check.hints()
    assert "take it from further away" in hint
    assert "肩" in hint_zh


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (None, CheckStatus.PASS),  # as taken: 0.20 eye distances open
        (closed_eyes(both=True), CheckStatus.WARN),
        (closed_eyes(both=False), CheckStatus.WARN),  # a wink: the smaller eye counts
    ],
)
def test_closed_eyes_and_a_wink_are_seen(
    cut_out: CutOut, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's closed eyes and wink share their mattes with it.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("eyes_open")
    assert check.status is status, check
    assert isinstance(check.value, float)
    if status is CheckStatus.WARN:
        assert check.value < EYES_OPEN_WARN
        # What the check is for: the lightness spread over the eyes still passed them.
        assert report.check("eyes_visible").status is CheckStatus.PASS


@pytest.mark.parametrize(
    "photo",
    [
        "df_img17.jpg",  # a squint: the wink's rows 0.08 in all, 0.03 in one band
        "df_img37.jpg",  # a squinting smile: 0.08 in all, 0.04 in one band
    ],
)
def test_a_wink_beside_a_narrowed_eye_is_seen(testdata: Path, cut_out: CutOut, photo: str) -> None:
    # Counting every row with light and dark across it, the shut lid's curved lash line and its
    # fringe, with the crease above, read as an opening as tall as these faces' real squints.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    item = cut_out(f"../devset/{photo}", closed_eyes(both=False))

    check = icao_check(item, "eyes_open")

    assert check.status is CheckStatus.WARN, check


@pytest.mark.parametrize(
    ("photo", "edit"),
    [
        # The lid pasted over obama's eyes carries the crease under them: the band reads 0.13.
        ("obama_partial_face.jpg", closed_eyes(both=True)),
        # Mascara: the thick lash line, its fringe and the lid's crease read 0.07-0.08 in one band.
        ("../devset/df_img8.jpg", closed_eyes(both=False, lashes=1.6)),
        ("../devset/df_img38.jpg", closed_eyes(both=False, lashes=1.6)),
    ],
)
def test_a_shut_eye_whose_lash_line_reads_as_an_opening_is_seen_by_its_missing_iris(
    testdata: Path, cut_out: CutOut, photo: str, edit: Edit
) -> None:
    # The band of light-dark rows over these shut eyes is as tall as a squint's; what a shut
    # eye lacks is the iris, a dark disc in the eye's middle that the lash line is too thin for.
    require((testdata / photo).is_file(), f"photo {photo} not found")
    item = cut_out(photo, edit)

    check = icao_check(item, "eyes_open")

    assert check.status is CheckStatus.WARN, check
    assert isinstance(check.value, float)
    assert check.value >= EYES_OPEN_WARN, check  # the band alone passed it
    iris = re.search(r"iris ([\d.]+)", check.note)
    assert iris is not None, check.note
    assert float(iris.group(1)) < EYES_IRIS_WARN
    assert "no dark iris" in check.note


@pytest.mark.parametrize(
    "photo",
    [
        "df_img17.jpg",  # a squint: 0.10 (0.060 against the cheeks' light, a warning)
        "df_img23.jpg",  # the palest iris of a face alone: 0.28
        "df_img29.jpg",  # a squint: 0.13
        "df_img37.jpg",  # a squinting smile: 0.08, the lowest of a face alone; iris 0.32
        "df_img62.jpg",  # eyes under low, dark brows: 0.13
    ],
)
def test_narrowed_real_eyes_pass(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter, photo: str
) -> None:
    # The lowest openings of the real faces: a squint or a smile is not a closed eye.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    found = source(f"../devset/{photo}", None)
    matte = compute_matte(found.rgb, found.faces[0], segmenter)

    check = render_id_photo(matte, found.faces[0], IdPhotoOptions(get_spec("icao"))).report.check(
        "eyes_open"
    )

    assert check.status is CheckStatus.PASS, check


def test_a_finished_photo_fed_back_in_reads_its_eyes_as_its_source(
    testdata: Path,
    source: FindSource,
    segmenter: U2NetpSegmenter,
    find_faces: Callable[[NDArray[np.uint8]], tuple[Face, ...]],
    aligner: FaceAligner,
) -> None:
    # The usual way a studio changes a background: its own ICAO photo sent again. df_img29's eyes
    # read 0.097 at the source's scale and 0.047 (a warning) in the finished photo's.
    require((testdata.parent / "devset" / "df_img29.jpg").is_file(), "devset photo not found")
    found = source("../devset/df_img29.jpg", None)
    options = IdPhotoOptions(get_spec("icao"))
    first = render_id_photo(
        compute_matte(found.rgb, found.faces[0], segmenter), found.faces[0], options
    )
    finished = decode_image(first.data, LimitSettings()).rgb
    face = levelled_face(finished, find_faces(finished)[0], aligner)  # as the service takes it

    again = render_id_photo(compute_matte(finished, face, segmenter), face, options).report

    before, after = first.report.check("eyes_open"), again.check("eyes_open")
    assert isinstance(before.value, float), before
    assert isinstance(after.value, float), after
    assert after.status is before.status is CheckStatus.PASS, (before, after)
    assert abs(after.value - before.value) <= 0.02, (before, after)


def shaded_sockets(share: float) -> Edit:
    """Deep-set eyes lit from above: an oval of ±0.3 × ±0.19 eye distances around each eye
    (0.04 above its centre, the brow's shade) darkened by ``share``, its edge softened."""

    def edit(
        rgb: NDArray[np.uint8], face: Face, _: Callable[[str], NDArray[np.uint8]]
    ) -> NDArray[np.uint8]:
        marks = face.landmarks
        distance = marks.left_eye.x - marks.right_eye.x
        mask = np.zeros(rgb.shape[:2], np.float32)
        for eye in (marks.right_eye, marks.left_eye):
            centre = (round(eye.x), round(eye.y - 0.04 * distance))
            axes = (round(0.3 * distance), round(0.19 * distance))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
        soft = cv2.GaussianBlur(mask, (0, 0), 0.06 * distance)[..., None]
        return np.clip(rgb * (1 - share * soft), 0, 255).astype(np.uint8)

    return edit


@pytest.mark.parametrize("photo", ["df_img19.jpg", "df_img22.jpg", "df_img31.jpg", "df_img35.jpg"])
def test_deep_set_open_eyes_pass(testdata: Path, cut_out: CutOut, photo: str) -> None:
    # Sockets in the brows' shade (half their light): against the cheeks' light these open eyes
    # read 0.016-0.046, warnings; against the eye box's own light they read as open.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    item = cut_out(f"../devset/{photo}", shaded_sockets(0.5))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("eyes_open").status is CheckStatus.PASS, report.check("eyes_open")


def test_eyes_too_small_to_tell_are_not_judged_open_or_closed(cut_out: CutOut) -> None:
    # The verdict set's tiny portrait_2: its eyes 30 px apart.
    item = cut_out("portrait_2.jpg", shrink(0.3))

    check = icao_check(item, "eyes_open")

    assert (check.value, check.status) == (None, CheckStatus.PASS), check
    assert "too small" in check.note


@pytest.mark.parametrize(
    ("edit", "spec", "value", "status"),
    [
        (None, "us-passport", "none", CheckStatus.PASS),
        (clear_glasses, "us-passport", "glasses", CheckStatus.FAIL),  # refused since 2016
        (clear_glasses, "us-green-card", "glasses", CheckStatus.FAIL),
        (clear_glasses, "icao", "glasses", CheckStatus.PASS),  # seen, and allowed
        (clear_glasses, "in-visa", "glasses", CheckStatus.PASS),  # 2x2 in, but India's rules
    ],
)
def test_glasses_fail_where_the_spec_refuses_them(
    cut_out: CutOut, edit: Edit | None, spec: str, value: str, status: CheckStatus
) -> None:
    # The verdict set's portrait in clear glasses shares its matte with it.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec(spec))).report

    check = report.check("glasses")
    assert (check.value, check.status) == (value, status), check
    if value == "glasses":
        assert "glasses seen" in check.note
        # What the check is for: thin clear frames leave the eyes visible, open and unglared.
        for name in ("eyes_visible", "eyes_open", "eye_glare"):
            assert report.check(name).status is CheckStatus.PASS, name


@pytest.mark.parametrize("photo", ["df_img24.jpg", "df_img25.jpg"])
def test_real_glasses_are_seen(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter, photo: str
) -> None:
    # The devset's two wearers; none of the other real faces measures under 0.48.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    found = source(f"../devset/{photo}", None)
    matte = compute_matte(found.rgb, found.faces[0], segmenter)

    for spec, status in (("us-visa", CheckStatus.FAIL), ("eu-passport", CheckStatus.PASS)):
        report = render_id_photo(matte, found.faces[0], IdPhotoOptions(get_spec(spec))).report
        check = report.check("glasses")
        assert (check.value, check.status) == ("glasses", status), (spec, check)


@pytest.mark.parametrize(
    ("photo", "tint"),
    [
        ("portrait_2.jpg", (0.5, 0.5, 0.5)),  # grey, half the light: 0.48
        ("portrait_2.jpg", (0.45, 0.55, 0.75)),  # blue: 0.53
        ("../devset/df_img47.jpg", (0.5, 0.5, 0.5)),  # pale eyes: 0.50
        ("../devset/df_img25.jpg", (0.5, 0.5, 0.5)),  # a real wearer's own frame: 0.52
    ],
)
def test_tinted_lenses_warn_where_glasses_are_allowed(
    testdata: Path, cut_out: CutOut, photo: str, tint: tuple[float, float, float]
) -> None:
    # Glasses seen and allowed passed whatever their lenses: a counter refuses tinted ones.
    require((testdata / photo).is_file(), f"photo {photo} not found")
    item = cut_out(photo, tinted_glasses(*tint))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("glasses").value == "glasses", report.check("glasses")
    check = report.check("tinted_lenses")
    assert check.status is CheckStatus.WARN, check
    assert isinstance(check.value, float)
    assert check.value < TINTED_LENS_WARN
    assert "darken the eyes" in check.note
    # What the check is for: the eyes behind a half-light tint still read visible and open.
    assert report.check("eyes_visible").status is not CheckStatus.FAIL


@pytest.mark.parametrize(
    ("photo", "edit"),
    [
        ("portrait_2.jpg", clear_glasses),  # 0.92
        ("../devset/df_img24.jpg", None),  # the devset's two wearers, clear lenses: 1.24
        ("../devset/df_img25.jpg", None),  # 1.00
        ("../devset/df_img34.jpg", clear_glasses),  # the lowest of 71 real faces in clear: 0.76
    ],
)
def test_clear_lenses_pass(testdata: Path, cut_out: CutOut, photo: str, edit: Edit | None) -> None:
    require((testdata / photo).is_file(), f"photo {photo} not found")
    item = cut_out(photo, edit)

    check = icao_check(item, "tinted_lenses")

    assert isinstance(check.value, float), check  # glasses seen and measured
    assert check.status is CheckStatus.PASS, check


def test_glasses_are_refused_by_the_us_sizes_only() -> None:
    refusing = {spec.key for spec in list_specs() if not spec.glasses_allowed}

    assert refusing == {"us-passport", "us-visa", "us-green-card"}
    assert get_spec("us-visa").to_dict()["glasses_allowed"] is False
    assert get_spec("icao").to_dict()["glasses_allowed"] is True


def test_the_sizes_on_icao_chinas_passport_and_canadas_ask_for_the_mouth_closed() -> None:
    asking = {spec.key for spec in list_specs() if spec.closed_mouth}

    icao_rules = {
        "icao",
        "eu-passport",
        "schengen-visa",
        "uk-passport",
        "in-passport",
        "au-passport",
        "kr-passport",
        "kr-visa",
        "jp-passport",
    }
    assert asking == icao_rules | {"cn-passport", "ca-passport"}
    assert get_spec("us-passport").to_dict()["closed_mouth"] is False  # "a natural smile"
    assert get_spec("icao").to_dict()["closed_mouth"] is True


@pytest.mark.parametrize(
    ("key", "note"),
    [
        ("icao", "teeth showing: this size asks for the mouth closed"),
        ("us-passport", "teeth showing: most passports want the mouth closed"),
    ],
)
def test_teeth_showing_warn_and_say_where_the_size_asks_for_the_mouth_closed(
    portrait: Callable[[str], Portrait], key: str, note: str
) -> None:
    # A warning on every size: the teeth measure is not sure enough to refuse a photo
    # (rose_leslie's closed mouth read 0.16 at some JPEG qualities).
    item = portrait("obama.jpg")  # a broad smile

    check = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec(key))).report.check(
        "mouth_closed"
    )

    assert (check.status, check.note) == (CheckStatus.WARN, note)
    assert isinstance(check.value, float)
    assert check.value > 0.12


@pytest.mark.parametrize(
    ("gap", "status"), [(None, CheckStatus.PASS), (0.06, CheckStatus.WARN), (0.1, CheckStatus.WARN)]
)
def test_lips_apart_with_no_teeth_showing_warn(
    cut_out: CutOut, gap: float | None, status: CheckStatus
) -> None:
    # Talking: the teeth measure read 0 and passed it on ICAO's size, which asks for the mouth
    # closed.
    item = cut_out("portrait_2.jpg", None if gap is None else open_mouth(gap))

    check = icao_check(item, "mouth_closed")

    assert check.status is status, check
    if status is CheckStatus.WARN:
        assert check.limit.of == "lips_gap"
        assert isinstance(check.value, float)
        assert check.value >= MOUTH_GAP_WARN
        assert check.note.startswith("the lips are apart")


@pytest.mark.parametrize(
    ("photo", "status"),
    [
        ("df_img57.jpg", CheckStatus.WARN),  # mid-word, an "O": no teeth showing
        ("df_img16.jpg", CheckStatus.PASS),  # closed, a moustache over the upper lip
        ("df_img61.jpg", CheckStatus.PASS),  # closed, a full dark beard
        ("df_img62.jpg", CheckStatus.PASS),  # closed, the line between the lips in shade
    ],
)
def test_a_real_open_mouth_is_told_from_bearded_closed_ones(
    testdata: Path,
    source: FindSource,
    segmenter: U2NetpSegmenter,
    photo: str,
    status: CheckStatus,
) -> None:
    # A dark gap alone read the beards as open (0.16-0.22 eye distances of dark rows); the
    # lips' red above and below it tells them apart.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    found = source(f"../devset/{photo}", None)
    face = found.faces[0]
    matte = compute_matte(found.rgb, face, segmenter)

    check = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report.check(
        "mouth_closed"
    )

    assert check.status is status, check


@pytest.mark.parametrize(
    ("photo", "gap", "status"),
    [
        ("df_img47.jpg", None, CheckStatus.PASS),  # a smile, its lips meeting low in the middle
        ("df_img47.jpg", 0.1, CheckStatus.WARN),
        ("df_img48.jpg", None, CheckStatus.PASS),  # a smile, the lower teeth's edges showing
        ("df_img48.jpg", 0.1, CheckStatus.WARN),
    ],
)
def test_lips_parted_in_a_smile_warn(
    testdata: Path, cut_out: CutOut, photo: str, gap: float | None, status: CheckStatus
) -> None:
    # A smile's lips meet 0.14 eye distances below its corners, where the gap was not looked
    # for (df_img47), and parted over the lower teeth the gap has teeth, not lip, below it
    # (df_img48): opened by 0.1 eye distances, both passed.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    item = cut_out(f"../devset/{photo}", None if gap is None else open_mouth(gap))

    check = icao_check(item, "mouth_closed")

    assert check.status is status, check
    if status is CheckStatus.WARN:
        assert check.limit.of == "lips_gap"


@pytest.mark.parametrize(
    ("edit", "status"), [(None, CheckStatus.PASS), (knit_hat, CheckStatus.WARN)]
)
def test_a_hat_down_to_the_brows_is_seen(
    cut_out: CutOut, edit: Edit | None, status: CheckStatus
) -> None:
    # The verdict set's portrait in a hat shares its matte with it.
    item = cut_out("portrait_2.jpg", edit)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("forehead_visible")
    assert check.status is status, check
    if status is CheckStatus.WARN:
        assert "headwear or hair" in check.note
        # What the check is for: the face below the brows is untouched and passes.
        for name in ("eyes_visible", "eyes_open", "face_occluded", "even_lighting"):
            assert report.check(name).status is CheckStatus.PASS, name


def test_a_fringe_of_one_s_own_hair_is_not_taken_for_headwear(cut_out: CutOut) -> None:
    # The verdict set's fringe, ending above the brows: ICAO and Chinese counters accept it, and
    # it warned as headwear (ΔE 84 from the cheeks) on most faces with dark hair.
    item = cut_out("portrait_2.jpg", fringe)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("forehead_visible")
    assert isinstance(check.value, float)
    assert check.value > 45  # covered, as a hat would be
    assert check.status is CheckStatus.PASS, check
    assert "fringe" in check.note


@pytest.mark.parametrize("photo", ["astronaut.jpg", "obama.jpg", "rose_leslie.jpg"])
def test_a_bare_forehead_is_not_taken_for_headwear(
    portrait: Callable[[str], Portrait], photo: str
) -> None:
    # The test photos' highest forehead differences: 27 (astronaut), 17, 16.
    item = portrait(photo)

    check = icao_check(item, "forehead_visible")

    assert check.status is CheckStatus.PASS, check
    assert isinstance(check.value, float)
    assert check.value > 10  # measured, not skipped


@pytest.mark.parametrize("colour", ["navy", "red"])
def test_a_cap_worn_high_is_seen(cut_out: CutOut, colour: str) -> None:
    # The forehead stays bare under a cap on the back of the head: forehead_visible read it as
    # skin and passed it. The verdict set's navy cap shares its matte with it.
    item = cut_out("portrait_2.jpg", cap_on_crown(colour))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("forehead_visible")
    assert (check.status, check.limit.of) == (CheckStatus.WARN, "crown_colour"), check
    assert isinstance(check.value, float)
    assert check.value > CROWN_DE_WARN
    assert "cap" in check.hints()[0]
    assert check.hints()[1]


@pytest.mark.parametrize("colour", ["grey", "white", "beige"])
def test_a_cap_near_the_hairs_or_the_skins_colour_is_seen_by_its_smooth_cloth(
    cut_out: CutOut, colour: str
) -> None:
    # As near her lit hair or her forehead as a real crown is to its sides (ΔE 16, 14, 10 where
    # crown_colour warns over 25), these caps passed; their cloth is smooth where hair is strands
    # (crown_detail 0.10, 0.06, 0.07; her own hair 1.24). The verdict set's grey cap shares its
    # matte with it.
    item = cut_out("portrait_2.jpg", cap_on_crown(colour))

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("forehead_visible")
    assert (check.status, check.limit.of) == (CheckStatus.WARN, "crown_detail"), check
    assert isinstance(check.value, float)
    assert check.value < CROWN_DETAIL_MIN
    assert "cap" in check.hints()[0]
    assert check.hints()[1]


def test_the_top_of_the_head_smoothed_to_cloth_is_taken_for_a_cap(
    portrait: Callable[[str], Portrait],
) -> None:
    # The measure is the hair's strands, not its colour: portrait_2's own crown, each row made
    # its median colour across the head (its colour and its light from above kept, its strands
    # gone), reads as a cap's cloth: 0.22, where her hair reads 1.24.
    item = portrait("portrait_2.jpg")
    distance = eye_distance_px(item.face)
    scale = 1 / item.matte.source_px_per_matte_px
    eyes = item.matte.to_matte_px(item.face.landmarks.right_eye)
    foreground = item.matte.foreground.copy()
    for row in range(round(eyes.y - 1.5 * distance * scale)):
        head = item.matte.alpha[row] > 0.5
        if head.any():
            foreground[row, head] = np.median(foreground[row, head], axis=0)
    smoothed = dataclasses.replace(item.matte, foreground=foreground)

    as_taken = crown_detail(item.matte, item.face, distance)
    cloth = crown_detail(smoothed, item.face, distance)

    assert as_taken is not None
    assert as_taken > CROWN_DETAIL_MIN * 2
    assert cloth is not None
    assert cloth < CROWN_DETAIL_MIN
    check = render_id_photo(smoothed, item.face, IdPhotoOptions(get_spec("icao"))).report.check(
        "forehead_visible"
    )
    assert (check.status, check.limit.of) == (CheckStatus.WARN, "crown_detail"), check


@pytest.mark.parametrize(
    ("photo", "colour", "top"),
    [("df_img21.jpg", "white", 1.61), ("df_img24.jpg", "grey", 1.94)],
)
def test_a_head_cut_flat_where_the_cut_out_dropped_a_cap_warns(
    testdata: Path, cut_out: CutOut, photo: str, colour: str, top: float
) -> None:
    # The cut-out drops these caps with the hair under them: the head ends flat at the cap's
    # rim, 1.15 eye distances above the eyes, and passed as a head. The verdict set's cases.
    require((testdata.parent / "devset" / photo).is_file(), f"devset photo {photo} not found")
    item = cut_out(f"../devset/{photo}", cap_on_crown(colour, top))

    check = icao_check(item, "crown_margin")

    assert (check.status, check.limit.of) == (CheckStatus.WARN, "eye_distances"), check
    assert isinstance(check.value, float)
    assert check.value < HEAD_TOP_WARN - 0.1
    head = measure_head(item.matte, item.face)
    assert head_dome(item.matte, head) < HEAD_DOME_MIN - 0.05
    assert "cap" in check.hints()[0]
    assert check.hints()[1]


def test_a_head_whose_side_lies_beside_the_cut_out_is_not_judged_for_its_dome(
    portrait: Callable[[str], Portrait],
) -> None:
    # The matte ends 0.3 eye distances right of the face's middle: the columns 0.5-0.6 out on
    # that side hold nothing (an index past the crop raised before).
    item = portrait("portrait_2.jpg")
    head = measure_head(item.matte, item.face)
    distance = head.eye_distance_px / item.matte.source_px_per_matte_px
    right = round(item.matte.to_matte_px(head.eye_centre).x + 0.3 * distance)
    crop = item.matte.crop_box
    matte = dataclasses.replace(
        item.matte,
        crop_box=dataclasses.replace(crop, x2=crop.x1 + right * item.matte.source_px_per_matte_px),
        alpha=item.matte.alpha[:, :right],
        foreground=item.matte.foreground[:, :right],
    )
    assert matte.to_matte_px(head.eye_centre) == item.matte.to_matte_px(head.eye_centre)

    assert head_dome(matte, head) == math.inf
    assert head_dome(item.matte, head) > HEAD_DOME_MIN


@pytest.mark.parametrize(
    ("photo", "face"),
    [
        # The lowest real crowns of the test and dev-set photos (scripts/head_top.py): Obama's
        # head tipped back beside Biden (1.26 eye distances above the eyes, as low as a cut one,
        # but a dome), then 1.51-1.55; df_img26's top as flat as a cut one (0.00), but at 1.55.
        ("two_people.jpg", 1),
        ("../devset/df_img57.jpg", None),
        ("../devset/df_img21.jpg", None),
        ("biden.jpg", None),
        ("../devset/df_img26.jpg", None),
        ("portrait_1.jpg", None),
        ("portrait_2.jpg", None),
    ],
)
def test_a_real_head_is_not_taken_for_one_cut_flat(
    testdata: Path, cut_out: CutOut, photo: str, face: int | None
) -> None:
    require((testdata / photo).is_file(), f"photo {photo} not found")
    item = cut_out(photo, None, face)
    head = measure_head(item.matte, item.face)
    top = -head.crown_y / head.eye_distance_px

    assert head.crown_visible
    assert top > HEAD_TOP_WARN + 0.1 or head_dome(item.matte, head) > HEAD_DOME_MIN + 0.1
    assert icao_check(item, "crown_margin").limit.of != "eye_distances"


@pytest.mark.parametrize(
    "photo",
    [
        "portrait_1.jpg",
        "portrait_2.jpg",
        "obama.jpg",
        "biden.jpg",
        "rose_leslie.jpg",
        "astronaut.jpg",
    ],
)
def test_the_top_of_a_bare_head_is_not_taken_for_a_cap(
    portrait: Callable[[str], Portrait], photo: str
) -> None:
    # Hair, dark, grey, auburn, short or long, reads as the hair beside the face (or, bald, as
    # the forehead); measured, not skipped. The highest of the test photos, 6 (portrait_1, the
    # sides of her hair in shade); every real face of the test and dev-set photos is below
    # CROWN_DE_WARN (docs/id-photos.md). Its strands hold fine detail near the hair's beside the
    # face (crown_detail; the lowest of these, the astronaut's soft small portrait, 0.40).
    item = portrait(photo)
    lab = cv2.cvtColor(item.matte.foreground, cv2.COLOR_RGB2LAB).astype(np.float32)
    distance = eye_distance_px(item.face)
    forehead = forehead_colour(lab, item.matte, item.face, distance)
    assert forehead is not None

    crown = crown_colour(item.matte, item.face, distance, forehead)
    detail = crown_detail(item.matte, item.face, distance)

    assert crown is not None
    assert crown < CROWN_DE_WARN - 5
    assert detail is not None
    assert detail > CROWN_DETAIL_MIN + 0.1
    assert icao_check(item, "forehead_visible").limit.of == ""


def test_a_blown_out_top_of_the_head_is_not_taken_for_a_cap(
    portrait: Callable[[str], Portrait],
) -> None:
    # Platinum hair under a hair light blows out (df_img27: 80 % of the box, ΔE 22 from the hair
    # beside it); white holds no colour to compare. portrait_2's hair above the eyes lit to white.
    item = portrait("portrait_2.jpg")
    distance = eye_distance_px(item.face)
    top = item.matte.to_matte_px(item.face.landmarks.right_eye).y - 1.3 * distance
    foreground = item.matte.foreground.copy()
    foreground[: max(0, round(top))] = 255
    matte = dataclasses.replace(item.matte, foreground=foreground)
    lab = cv2.cvtColor(foreground, cv2.COLOR_RGB2LAB).astype(np.float32)
    forehead = forehead_colour(lab, matte, item.face, distance)
    assert forehead is not None

    assert crown_colour(matte, item.face, distance, forehead) is None


@pytest.mark.parametrize(
    "centre",
    [Point(400, 600), Point(1100, 600), Point(700, 50), Point(700, 1300)],
    ids=["left", "right", "above", "below"],
)
def test_a_box_outside_the_matte_holds_no_pixels(centre: Point) -> None:
    # The matte is the crop from (450, 100) to (1000, 1200). Clipped at 0 alone, a box wholly
    # left of it or above it ended at a negative index, which numpy counts from the far edge.
    matte, _ = synthetic(crop=Box(450, 100, 1000, 1200))

    rows, cols = matte_box(matte, centre, 8.0, 8.0)

    assert matte.alpha[rows, cols].size == 0
    assert (rows.start <= rows.stop, cols.start <= cols.stop) == (True, True)


def test_a_cap_is_seen_on_a_face_near_the_photos_edge() -> None:
    # A navy cap over the crown of a brown-haired head wearing navy glasses, its eyes 50 px
    # (0.6 eye distances) from the photo's left edge: the hair boxes left of the face are off
    # the photo. They read most of the eye line instead (the glasses), as navy as the cap, and
    # the cap went unseen (ΔE 0.0, where the whole photo measures 73.8).
    def measured(crop: Box) -> float | None:
        matte, face = synthetic(crop=crop)
        distance = eye_distance_px(face)
        top = head_top(matte, face, distance)
        assert top is not None
        at = matte.to_matte_px(EYES)
        foreground = np.full_like(matte.foreground, (90, 60, 40))  # brown hair, skin alike
        navy = (20, 30, 120)
        crown_y = round(at.y - top * distance)
        foreground[crown_y : crown_y + round(0.6 * distance)] = navy  # the cap
        glasses_x = max(0, round(at.x - 0.5 * distance)), round(at.x + 0.6 * distance)
        foreground[round(at.y) - 10 : round(at.y) + 11, glasses_x[0] : glasses_x[1]] = navy
        matte = dataclasses.replace(matte, foreground=foreground)
        lab = cv2.cvtColor(foreground, cv2.COLOR_RGB2LAB).astype(np.float32)
        forehead = forehead_colour(lab, matte, face, distance)
        assert forehead is not None
        return crown_colour(matte, face, distance, forehead)

    whole = measured(Box(0, 0, 1000, 1200))
    near_edge = measured(Box(450, 0, 1000, 1200))

    assert whole is not None
    assert whole > CROWN_DE_WARN
    assert near_edge is not None
    assert near_edge > CROWN_DE_WARN


@pytest.mark.parametrize(
    ("depth", "status"),
    [(0.0, CheckStatus.PASS), (0.25, CheckStatus.PASS), (0.45, CheckStatus.FAIL)],
)
def test_a_shadow_across_the_eyes_is_seen(
    cut_out: CutOut, depth: float, status: CheckStatus
) -> None:
    # The verdict set's portrait under a brim's shadow shares its matte with it.
    item = cut_out("portrait_2.jpg", brim_shadow(depth) if depth else None)

    report = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao"))).report

    check = report.check("eye_shadow")
    assert check.status is status, check
    if status is CheckStatus.FAIL:
        # What the check is for: both cheeks are lit alike, so even_lighting passed it.
        assert report.check("even_lighting").status is CheckStatus.PASS


def test_a_shadow_across_the_eyes_is_not_judged_on_a_turned_head(
    testdata: Path, source: FindSource, segmenter: U2NetpSegmenter
) -> None:
    # The second face of df_couple, turned 27°: the nose's own shaded side reads 0.56.
    require((testdata.parent / "devset/df_couple.jpg").is_file(), "devset photo not found")
    found = source("../devset/df_couple.jpg", None)
    face = max(found.faces, key=lambda f: f.box.x1)
    matte = compute_matte(found.rgb, face, segmenter)

    report = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao"))).report

    assert report.check("yaw").status is CheckStatus.FAIL
    check = report.check("eye_shadow")
    assert (check.value, check.status) == (None, CheckStatus.PASS), check
