"""detect on real photos: counts from faces.json, sane landmarks, and coordinates in the source
image's pixels whatever the decoder did (EXIF rotation, JPEG draft decoding, resizing)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from faceflow.config import LimitSettings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces, fit_to_detector
from faceflow.pipeline.detect_options import DetectOptions, SmallFaces
from tests.fixtures.images import exif_rotated_jpeg, load_rgb
from tests.fixtures.models import PhotoFacts, left_to_right, photos_with_facts

Detect = Callable[[bytes], tuple[Face, ...]]


@pytest.fixture(scope="module")
def detect(model_set: ModelSet) -> Detect:
    """Decode untrusted bytes as the service does, then detect with the default options."""

    def run(data: bytes) -> tuple[Face, ...]:
        image = decode_image(data, LimitSettings())
        return detect_faces(
            image.rgb, model_set.detector, DetectOptions(), source_scale=image.scale
        )

    return run


@pytest.fixture(scope="module")
def detect_photo(detect: Detect, testdata: Path) -> Callable[[str], tuple[Face, ...]]:
    """Faces in a test photo, found once per module."""
    found: dict[str, tuple[Face, ...]] = {}

    def run(photo: str) -> tuple[Face, ...]:
        if photo not in found:
            found[photo] = detect((testdata / photo).read_bytes())
        return found[photo]

    return run


@pytest.mark.parametrize("photo", photos_with_facts())
def test_face_count_matches_the_facts(
    detect_photo: Callable[[str], tuple[Face, ...]],
    photo_facts: dict[str, PhotoFacts],
    photo: str,
) -> None:
    facts = photo_facts[photo]

    faces = detect_photo(photo)

    assert facts.faces_min <= len(faces) <= facts.faces_max


@pytest.mark.parametrize("photo", ["coffee.jpg", "rocket.jpg", "cat.jpg"])
def test_no_face_is_found_in_photos_without_people(
    detect_photo: Callable[[str], tuple[Face, ...]], photo: str
) -> None:
    assert detect_photo(photo) == ()


@pytest.mark.parametrize("photo", photos_with_facts())
def test_faces_lie_inside_the_image_with_landmarks_inside_their_box(
    detect_photo: Callable[[str], tuple[Face, ...]], testdata: Path, photo: str
) -> None:
    width, height = load_rgb(testdata / photo).size

    for face in detect_photo(photo):
        box, marks = face.box, face.landmarks
        assert 0 <= box.x1 < box.x2 <= width
        assert 0 <= box.y1 < box.y2 <= height
        assert 0.0 < face.score <= 1.0
        margin = 0.05 * box.width_px
        for point in marks.points():
            assert box.contains(point, margin_px=margin), (point, box)
        assert max(marks.right_eye.y, marks.left_eye.y) < min(
            marks.mouth_right.y, marks.mouth_left.y
        )
        # The subject's right eye is on the image's left for a face looking at the camera.
        assert marks.right_eye.x < marks.left_eye.x


def test_faces_are_ordered_largest_first(detect_photo: Callable[[str], tuple[Face, ...]]) -> None:
    faces = detect_photo("two_people.jpg")

    areas = [face.box.area_px for face in faces]
    assert len(areas) == 2
    assert areas == sorted(areas, reverse=True)


def assert_same_faces(found: tuple[Face, ...], expected: tuple[Face, ...], tol_px: float) -> None:
    assert len(found) == len(expected)
    for ours, reference in zip(left_to_right(found), left_to_right(expected), strict=True):
        np.testing.assert_allclose(ours.box.to_dict(), reference.box.to_dict(), atol=tol_px)
        for point, ref_point in zip(
            ours.landmarks.points(), reference.landmarks.points(), strict=True
        ):
            np.testing.assert_allclose(point.to_dict(), ref_point.to_dict(), atol=tol_px)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_upload_gives_the_upright_photos_coordinates(
    detect: Detect, testdata: Path, orientation: int
) -> None:
    photo = testdata / "two_people.jpg"
    upright = detect(photo.read_bytes())

    rotated = detect(exif_rotated_jpeg(photo, orientation))

    # Only JPEG re-encoding separates the two: the answer may move by a pixel or two.
    assert_same_faces(rotated, upright, tol_px=3.0)


def enlarged_jpeg(path: Path, factor: int) -> bytes:
    """The photo scaled up ``factor`` times, as a JPEG: large enough for draft decoding."""
    shown = load_rgb(path)
    big = shown.resize((shown.width * factor, shown.height * factor), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("photo", ["two_people.jpg", "obama.jpg"])
def test_draft_decoded_large_jpeg_gives_full_resolution_coordinates(
    model_set: ModelSet, testdata: Path, photo: str
) -> None:
    data = enlarged_jpeg(testdata / photo, 3)
    full = decode_image(data, LimitSettings())
    draft = decode_image(data, LimitSettings(), max_long_side_px=640)
    assert draft.scale > 1.0
    assert (draft.source_width_px, draft.source_height_px) == (full.width_px, full.height_px)

    from_full = detect_faces(full.rgb, model_set.detector, DetectOptions())
    from_draft = detect_faces(
        draft.rgb, model_set.detector, DetectOptions(), source_scale=draft.scale
    )

    assert len(from_full) >= 1
    # Both detect at 640 px from differently resampled pixels: a few detector pixels apart.
    tolerance = 0.05 * min(face.box.width_px for face in from_full)
    assert_same_faces(from_draft, from_full, tol_px=tolerance)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (1280, 720),
        (320, 240),
        (640, 640),
        (500, 900),
        (2600, 1900),
        (3001, 401),
        # The sides' limits (limits.min_side_px, max_side_px): shorter than one shrink block.
        (12_000, 16),
        (16, 12_000),
        (11_999, 17),
    ],
)
def test_fit_to_detector_makes_the_long_side_640(width: int, height: int) -> None:
    rgb = np.zeros((height, width, 3), np.uint8)

    small, back = fit_to_detector(rgb)

    assert max(small.shape[:2]) == 640
    assert small.shape[1] * back == pytest.approx(width, abs=back)
    assert small.shape[0] * back == pytest.approx(height, abs=back)


def test_shrinking_for_the_detector_averages_fine_detail_away() -> None:
    # One-pixel stripes: an anti-aliased shrink leaves even grey; point sampling leaves stripes.
    rgb = np.zeros((1300, 1900, 3), np.uint8)
    rgb[:, ::2] = 255

    small, _ = fit_to_detector(rgb)

    assert np.abs(small.astype(np.int16) - 128).max() <= 2


@pytest.mark.parametrize("photo", ["two_people.jpg", "obama.jpg", "portrait_1.jpg"])
def test_the_block_shrink_finds_the_faces_a_plain_area_shrink_finds(
    model_set: ModelSet, testdata: Path, photo: str
) -> None:
    rgb = decode_image((testdata / photo).read_bytes(), LimitSettings()).rgb
    small, back = fit_to_detector(rgb)
    size = (small.shape[1], small.shape[0])
    area = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    ours = model_set.detector.detect(small, 0.7, 0.3)
    reference = model_set.detector.detect(np.asarray(area, np.uint8), 0.7, 0.3)

    assert back > 1.0
    assert len(ours) == len(reference) >= 1
    for box, marks in zip(reference.boxes, reference.landmarks, strict=True):
        match = int(np.abs(ours.boxes - box).max(axis=1).argmin())
        tolerance = 0.03 * float(box[2] - box[0])
        np.testing.assert_allclose(ours.boxes[match], box, atol=tolerance)
        np.testing.assert_allclose(ours.landmarks[match], marks, atol=tolerance)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_detection_on_a_resized_copy_reports_source_coordinates(
    model_set: ModelSet, testdata: Path, factor: float
) -> None:
    rgb = decode_image((testdata / "obama.jpg").read_bytes(), LimitSettings()).rgb
    reference = detect_faces(rgb, model_set.detector, DetectOptions())
    resized = np.asarray(
        Image.fromarray(rgb).resize(
            (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)),
            Image.Resampling.LANCZOS,
        )
    )

    faces = detect_faces(resized, model_set.detector, DetectOptions(), source_scale=1 / factor)

    assert_same_faces(faces, reference, tol_px=0.05 * reference[0].box.width_px)


def test_options_bound_the_faces_kept(model_set: ModelSet, testdata: Path) -> None:
    rgb = decode_image((testdata / "two_people.jpg").read_bytes(), LimitSettings()).rgb
    both = detect_faces(rgb, model_set.detector, DetectOptions())
    assert len(both) == 2

    largest = detect_faces(rgb, model_set.detector, DetectOptions(max_faces=1))
    too_small = detect_faces(rgb, model_set.detector, DetectOptions(min_face_px=1000))
    too_strict = detect_faces(rgb, model_set.detector, DetectOptions(score_threshold=0.99))

    assert largest == both[:1]
    assert too_small == ()
    assert too_strict == ()


def faces_shrunk_onto_a_large_canvas(testdata: Path, factor: float) -> NDArray[np.uint8]:
    """two_people.jpg shrunk by ``factor`` onto a 2560×1440 grey canvas: its faces become too
    small for a single 640 px pass over the whole canvas."""
    rgb = decode_image((testdata / "two_people.jpg").read_bytes(), LimitSettings()).rgb
    small = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    canvas = np.full((1440, 2560, 3), 120, np.uint8)
    canvas[600 : 600 + small.shape[0], 1000 : 1000 + small.shape[1]] = small
    return canvas


def test_tiles_find_faces_too_small_for_the_single_pass(
    model_set: ModelSet, testdata: Path
) -> None:
    canvas = faces_shrunk_onto_a_large_canvas(testdata, 0.22)

    single = detect_faces(canvas, model_set.detector, DetectOptions(small_faces=SmallFaces.OFF))
    tiled = detect_faces(canvas, model_set.detector, DetectOptions(small_faces=SmallFaces.TILES))

    assert single == ()
    assert len(tiled) == 2
    for face in tiled:
        assert 600 <= face.box.y1 < face.box.y2 <= 600 + 661 * 0.22 + 1


@pytest.mark.parametrize("photo", ["two_people.jpg", "obama.jpg", "portrait_1.jpg"])
def test_tiles_add_no_duplicate_of_a_face_the_single_pass_found(
    model_set: ModelSet, testdata: Path, photo: str
) -> None:
    rgb = decode_image((testdata / photo).read_bytes(), LimitSettings()).rgb
    single = detect_faces(rgb, model_set.detector, DetectOptions(small_faces=SmallFaces.OFF))

    tiled = detect_faces(rgb, model_set.detector, DetectOptions(small_faces=SmallFaces.TILES))

    assert len(tiled) == len(single)


@pytest.mark.parametrize("degrees", [12.0, -20.0])
def test_a_tilted_head_reports_its_roll(
    model_set: ModelSet, photo_bytes: Callable[[str], bytes], degrees: float
) -> None:
    # Levelling an ID photo and aligning the age and gender chips rest on this angle; a coarse
    # first pass once read 12° of tilt as 1°.
    rgb = np.asarray(load_rgb(photo_bytes("portrait_2.jpg")))
    (upright,) = detect_faces(rgb, model_set.detector, DetectOptions())
    eyes = (
        (upright.landmarks.right_eye.x + upright.landmarks.left_eye.x) / 2,
        (upright.landmarks.right_eye.y + upright.landmarks.left_eye.y) / 2,
    )
    turn = cv2.getRotationMatrix2D(eyes, degrees, 1.0)
    tilted = cv2.warpAffine(
        rgb, turn, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REPLICATE
    )

    (face,) = detect_faces(np.ascontiguousarray(tilted), model_set.detector, DetectOptions())

    # cv2 turns counter-clockwise for positive angles; roll is clockwise on screen. YuNet's own
    # landmarks under-read a tilt (9.5° for 12°), so the bound is loose but far from 0.
    assert face.roll == pytest.approx(-degrees, abs=0.4 * abs(degrees))
