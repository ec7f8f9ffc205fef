"""Rendering real portraits: exact size and DPI, background at the edges, and the head placed by
rule, checked by running the detector on the output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import JpegImagePlugin

from faceflow.config import LimitSettings
from faceflow.errors import InvalidParameter, MultipleFaces, NoFace
from faceflow.imaging.formats import OutputFormat
from faceflow.imaging.ingest import decode_image
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.pipeline.idphoto.compliance import CheckStatus
from faceflow.pipeline.idphoto.matte import compute_matte, matte_from_bytes, matte_to_bytes
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import make_id_photo, render_id_photo, render_pixels
from faceflow.pipeline.idphoto.sheet import tile_sheet
from faceflow.pipeline.idphoto.sheet_plan import get_paper
from faceflow.pipeline.idphoto.specs import custom_spec, get_spec
from faceflow.pipeline.idphoto.warp import warp_matte
from tests.fixtures.environment import require
from tests.fixtures.idphoto import FindFaces, assert_placed_by_rule, opened, placement
from tests.pipeline.idphoto.conftest import Portrait

PORTRAITS = ["portrait_1.jpg", "portrait_2.jpg", "obama.jpg"]
SPECS = ["cn-1inch", "icao", "us-passport", "cn-passport", "cn-id-card"]


@pytest.mark.parametrize("key", [*SPECS, "ca-passport", "jp-visa"])
@pytest.mark.parametrize("fmt", [OutputFormat.JPEG, OutputFormat.PNG])
def test_exact_size_and_dpi(
    portrait: Callable[[str], Portrait], key: str, fmt: OutputFormat
) -> None:
    item = portrait("portrait_2.jpg")
    spec = get_spec(key)

    result = render_id_photo(item.matte, item.face, IdPhotoOptions(spec, output_format=fmt))

    image = opened(result.data)
    assert image.format == fmt.value.upper()
    assert image.size == (spec.width_px, spec.height_px) == (result.width_px, result.height_px)
    # PNG stores whole pixels per metre, so 350 dpi reads back as 350.012.
    assert image.info["dpi"] == pytest.approx((spec.dpi, spec.dpi), rel=1e-3)
    assert result.dpi == spec.dpi
    assert result.media_type == f"image/{fmt.value}"


def test_custom_pixel_size(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("obama.jpg")
    spec = custom_spec(480, 640, "px", 300)

    result = render_id_photo(item.matte, item.face, IdPhotoOptions(spec))

    assert opened(result.data).size == (480, 640)


@pytest.mark.parametrize("photo", PORTRAITS)
@pytest.mark.parametrize("colour", ["white", "blue", "red", "#2a7f3c"])
def test_corners_and_top_edge_are_the_background(
    portrait: Callable[[str], Portrait], photo: str, colour: str
) -> None:
    item = portrait(photo)
    background = parse_background(colour)
    options = IdPhotoOptions(get_spec("cn-1inch"), background, OutputFormat.PNG)

    pixels = np.asarray(opened(render_id_photo(item.matte, item.face, options).data))

    expected = np.array(background.colour)
    # The whole top row is background (the crown sits below it), and so are the side columns
    # down to a third of the height (beside the head). Below that come the shoulders.
    assert np.abs(pixels[0].astype(int) - expected).max() <= 2
    assert np.abs(pixels[: pixels.shape[0] // 3, 0].astype(int) - expected).max() <= 2
    assert np.abs(pixels[: pixels.shape[0] // 3, -1].astype(int) - expected).max() <= 2


def test_vertical_gradient_top_is_the_colour_and_bottom_is_lighter(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("portrait_1.jpg")
    options = IdPhotoOptions(
        get_spec("icao"), parse_background("blue", "vertical"), OutputFormat.PNG
    )

    pixels = np.asarray(opened(render_id_photo(item.matte, item.face, options).data)).astype(int)

    assert np.abs(pixels[0, 0] - [0x43, 0x8E, 0xDB]).max() <= 2
    # Halfway down the left edge, beside the head, the gradient is lighter than at the top.
    middle = pixels[pixels.shape[0] // 2, 0]
    assert middle[0] > pixels[0, 0, 0] + 40


@pytest.mark.parametrize("photo", PORTRAITS)
@pytest.mark.parametrize("key", SPECS)
def test_detector_on_the_output_finds_the_head_placed_by_rule(
    portrait: Callable[[str], Portrait], find_faces: FindFaces, photo: str, key: str
) -> None:
    item = portrait(photo)
    spec = get_spec(key)
    jpeg = render_id_photo(item.matte, item.face, IdPhotoOptions(spec))
    png = render_id_photo(
        item.matte,
        item.face,
        IdPhotoOptions(spec, output_format=OutputFormat.PNG, transparent=True),
    )

    assert_placed_by_rule(spec, placement(spec, jpeg.data, png.data, find_faces))


def test_max_kb_is_honoured_by_quality_and_the_file_decodes(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("portrait_1.jpg")
    spec = get_spec("cn-1inch")
    unlimited = render_id_photo(item.matte, item.face, IdPhotoOptions(spec))

    capped = render_id_photo(item.matte, item.face, IdPhotoOptions(spec, max_kb=15))

    assert len(unlimited.data) > 15 * 1000
    # Kilobytes of 1,000 bytes: a portal counting either way accepts the file.
    assert len(capped.data) <= 15 * 1000
    assert capped.quality is not None
    assert unlimited.quality == 95
    assert capped.quality < unlimited.quality
    image = opened(capped.data)
    assert image.size == (spec.width_px, spec.height_px)
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    # No padding: the file ends at the JPEG end-of-image marker.
    assert capped.data.endswith(b"\xff\xd9")


@pytest.mark.parametrize(
    ("quality", "status"),
    # Quality 25: the blocks plain on the forehead of a small photo (2.04; it passed to 2.2).
    [(95, CheckStatus.PASS), (25, CheckStatus.WARN), (12, CheckStatus.WARN), (3, CheckStatus.FAIL)],
)
def test_the_report_judges_the_jpeg_as_written(
    portrait: Callable[[str], Portrait], quality: int, status: CheckStatus
) -> None:
    """A quality low enough to fit a small max_kb shows 8 × 8 blocks that the source's own
    blockiness check cannot see: the file came out with a report that passed."""
    item = portrait("portrait_1.jpg")
    spec = get_spec("cn-1inch")

    result = render_id_photo(item.matte, item.face, IdPhotoOptions(spec, quality=quality))

    check = result.report.check("file_compression")
    assert check.status is status, check
    assert result.report.check("blockiness").status is CheckStatus.PASS  # the source is fine
    png = IdPhotoOptions(spec, output_format=OutputFormat.PNG)
    with pytest.raises(KeyError):  # lossless: nothing to judge
        render_id_photo(item.matte, item.face, png).report.check("file_compression")


def test_an_impossible_max_kb_is_refused(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("portrait_1.jpg")

    with pytest.raises(InvalidParameter):
        render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("ca-passport"), max_kb=2))


def test_transparent_png_has_clear_corners_and_an_opaque_face(
    portrait: Callable[[str], Portrait],
) -> None:
    item = portrait("portrait_2.jpg")
    spec = get_spec("icao")
    options = IdPhotoOptions(spec, output_format=OutputFormat.PNG, transparent=True)

    result = render_id_photo(item.matte, item.face, options)

    image = opened(result.data)
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == alpha[0, -1] == 0
    assert alpha[spec.height_px // 2, spec.width_px // 2] == 255
    assert result.quality is None
    # Its report judges no background: it said white passed, the clothes checked against white.
    colour = result.report.check("background_colour")
    assert (colour.value, colour.status) == ("transparent", CheckStatus.PASS)
    assert result.report.check("clothing_contrast").value is None


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [
        (OutputFormat.JPEG, {"transparent": True}),
        (OutputFormat.PNG, {"max_kb": 50}),
        (OutputFormat.JPEG, {"max_kb": 0}),
        (OutputFormat.JPEG, {"quality": 0}),
    ],
)
def test_contradictory_options_are_refused(fmt: OutputFormat, extra: dict[str, object]) -> None:
    with pytest.raises(InvalidParameter):
        IdPhotoOptions(get_spec("icao"), output_format=fmt, **extra)  # type: ignore[arg-type]


def test_a_cached_matte_renders_identically(portrait: Callable[[str], Portrait]) -> None:
    item = portrait("obama.jpg")
    cached = matte_from_bytes(matte_to_bytes(item.matte))
    options = IdPhotoOptions(get_spec("us-passport"), parse_background("grey"), OutputFormat.PNG)

    fresh = render_id_photo(item.matte, item.face, options)
    again = render_id_photo(cached, cached.face, options)

    assert again.data == fresh.data


def test_make_id_photo_returns_the_matte_and_the_photo(
    decode_photo: Callable[[str], np.ndarray],
    find_faces: FindFaces,
    segmenter: U2NetpSegmenter,
) -> None:
    rgb = decode_photo("portrait_2.jpg")

    outcome = make_id_photo(rgb, find_faces(rgb), segmenter, IdPhotoOptions(get_spec("cn-2inch")))

    assert outcome.result.width_px == 413
    assert outcome.matte.face == find_faces(rgb)[0]
    assert outcome.result.report.check("face_count").status == "pass"


def test_two_faces_are_refused_with_the_count(
    decode_photo: Callable[[str], np.ndarray],
    find_faces: FindFaces,
    segmenter: U2NetpSegmenter,
) -> None:
    rgb = decode_photo("two_people.jpg")

    with pytest.raises(MultipleFaces) as caught:
        make_id_photo(rgb, find_faces(rgb), segmenter, IdPhotoOptions(get_spec("icao")))

    assert caught.value.details == {"face_count": 2}
    assert caught.value.to_dict()["face_count"] == 2


def test_no_face_is_refused(
    decode_photo: Callable[[str], np.ndarray],
    find_faces: FindFaces,
    segmenter: U2NetpSegmenter,
) -> None:
    rgb = decode_photo("coffee.jpg")

    with pytest.raises(NoFace):
        make_id_photo(rgb, find_faces(rgb), segmenter, IdPhotoOptions(get_spec("icao")))


def test_no_rim_of_the_old_wall_round_short_dark_hair_on_red(
    testdata: Path, find_faces: FindFaces, segmenter: U2NetpSegmenter
) -> None:
    """df_img14 (short dark hair, skin at the temples, a white wall) on red: the band 1–5 px
    outside the cut-out's edge, above the chin, must be the red, not a pink rim.

    The rim was the cut-out's soft tail over the wall (α 0.14 → 0.004 over 6 matte px) carrying
    the edge's light colour, which linear-light blending lifts strongly over red's empty green
    and blue. Mean ΔE (CIE 1976) from the red in that band: 9.5 before the fix, 2.3 after.
    """
    photo = testdata.parent / "devset" / "df_img14.jpg"
    require(photo.is_file(), f"devset photo not found at {photo}")
    rgb = decode_image(photo.read_bytes(), LimitSettings()).rgb
    face = find_faces(rgb)[0]
    matte = compute_matte(rgb, face, segmenter)
    red = parse_background("red")
    options = IdPhotoOptions(get_spec("icao"), background=red)

    rendered = render_pixels(matte, face, options)

    _, alpha = warp_matte(matte, rendered.layout)
    subject = (alpha >= 0.5).astype(np.uint8)
    outside = cv2.distanceTransform(1 - subject, cv2.DIST_L2, 3)
    band = (outside >= 1) & (outside <= 5)
    chin = rendered.layout.transform @ np.array([face.box.x2, face.box.y2, 1.0])
    band[round(chin[1]) :] = False
    band[:, :6] = band[:, -6:] = False
    band[:6] = False

    def lab(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.cvtColor(pixels.astype(np.float32) / 255, cv2.COLOR_RGB2LAB))

    backdrop = lab(np.array([[red.colour]], dtype=np.uint8))[0, 0]
    delta_e = np.linalg.norm(lab(rendered.pixels) - backdrop, axis=2)
    assert band.sum() > 500
    assert float(delta_e[band].mean()) < 5.0


def test_the_jpeg_as_written_keeps_the_cut_out_edge_on_red(
    portrait: Callable[[str], Portrait],
) -> None:
    """portrait_2's hair on red, as the file is read back: the band round the cut-out's edge
    must be the pixels that were rendered, not a fringe.

    JPEG's 4:2:0 chroma (colour at half the resolution each way) smeared the sharp red-to-hair
    edge over two pixels: ΔE (CIE 1976) from the rendered pixels in the band, mean 4.5 and
    99th percentile 20.7 at quality 95; in full colour (4:4:4) 2.0 and 6.7.
    """
    item = portrait("portrait_2.jpg")
    options = IdPhotoOptions(get_spec("cn-1inch"), background=parse_background("red"))

    rendered = render_pixels(item.matte, item.face, options)
    written = render_id_photo(item.matte, item.face, options)

    _, alpha = warp_matte(item.matte, rendered.layout)
    soft = ((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8)
    band = cv2.dilate(soft, np.ones((5, 5), np.uint8)) > 0

    def lab(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.cvtColor(pixels.astype(np.float32) / 255, cv2.COLOR_RGB2LAB))

    decoded = np.asarray(opened(written.data).convert("RGB"))
    delta_e = np.linalg.norm(lab(decoded) - lab(rendered.pixels), axis=2)[band]
    assert band.sum() > 5000
    assert float(delta_e.mean()) < 3.0
    assert float(np.percentile(delta_e, 99)) < 10.0


@pytest.mark.parametrize("max_kb", [None, 20])
def test_the_photo_and_its_sheet_keep_full_colour_resolution(
    portrait: Callable[[str], Portrait], max_kb: int | None
) -> None:
    """4:4:4 in the file (Pillow's sampling 0), with or without a size cap a 1-inch photo fits
    at a quality of 50 or more, and on the print sheet."""
    item = portrait("portrait_2.jpg")
    options = IdPhotoOptions(get_spec("cn-1inch"), max_kb=max_kb)

    written = render_id_photo(item.matte, item.face, options)
    sheet = tile_sheet(
        render_pixels(item.matte, item.face, options).pixels, 25, 35, get_paper("6inch")
    )

    assert JpegImagePlugin.get_sampling(opened(written.data)) == 0
    assert JpegImagePlugin.get_sampling(opened(sheet.encode())) == 0
